// A multi-turn chat through the Vercel AI SDK with its defaults (Responses API, store: true).
import { generateText, streamText } from "ai";
import { createOpenAI } from "@ai-sdk/openai";
import { describeError, parseArguments, print } from "./common.mjs";

const { baseURL, model: modelName } = parseArguments();
const openai = createOpenAI({ baseURL, apiKey: "placeholder-the-proxy-injects-the-key" });
const model = openai.responses(modelName);

const prompts = ["Hello, who are you?", "What did I just ask you?", "Thanks, bye."];
const messages = [];
const turns = [];
try {
  for (const [index, prompt] of prompts.entries()) {
    messages.push({ role: "user", content: prompt });
    let result;
    if (index === 1) {
      // streamText reports errors to onError; the awaited promises only say "no output".
      let streamError = null;
      const stream = streamText({ model, messages, onError: ({ error }) => { streamError = error; } });
      try {
        result = {
          text: await stream.text,
          reasoningText: await stream.reasoningText,
          response: await stream.response,
          providerMetadata: await stream.providerMetadata,
        };
      } catch (error) {
        throw streamError ?? error;
      }
      if (streamError) throw streamError;
    } else {
      result = await generateText({ model, messages });
    }
    turns.push({
      prompt,
      streamed: index === 1,
      text: result.text,
      reasoning: result.reasoningText ?? null,
      responseId: result.providerMetadata?.openai?.responseId ?? result.response?.id ?? null,
    });
    messages.push(...result.response.messages);
  }
  print({ turns });
} catch (error) {
  print({ turns, error: describeError(error) });
  process.exitCode = 1;
}
