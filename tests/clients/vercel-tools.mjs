// A multi-step tool loop through the Vercel AI SDK (Responses API, store: true), run twice:
// with generateText (stream: false) and with streamText (stream: true).
import { generateText, stepCountIs, streamText, tool } from "ai";
import { createOpenAI } from "@ai-sdk/openai";
import { z } from "zod";
import { describeError, parseArguments, print } from "./common.mjs";

const { baseURL, model: modelName } = parseArguments();
const openai = createOpenAI({ baseURL, apiKey: "placeholder-the-proxy-injects-the-key" });

const calls = [];
const weather = tool({
  description: "The weather forecast for a city.",
  inputSchema: z.object({ city: z.string() }),
  execute: async ({ city }) => {
    calls.push(city);
    return { city, forecast: "sunny", celsius: 21 };
  },
});

function describeStep(step) {
  return {
    text: step.text,
    reasoning: step.reasoningText ?? null,
    toolCalls: step.toolCalls.map((call) => ({ name: call.toolName, input: call.input })),
    finishReason: step.finishReason,
    responseId: step.providerMetadata?.openai?.responseId ?? step.response?.id ?? null,
  };
}

const runs = [];
try {
  for (const mode of ["generate", "stream"]) {
    const options = {
      model: openai.responses(modelName),
      tools: { weather },
      stopWhen: stepCountIs(5),
      prompt: "What is the weather in Paris?",
    };
    let steps;
    let text;
    if (mode === "generate") {
      const result = await generateText(options);
      steps = result.steps;
      text = result.text;
    } else {
      // streamText reports errors to onError; the awaited promises only say "no output".
      let streamError = null;
      const result = streamText({ ...options, onError: ({ error }) => { streamError = error; } });
      try {
        text = await result.text;
        steps = await result.steps;
      } catch (error) {
        throw streamError ?? error;
      }
      if (streamError) throw streamError;
    }
    runs.push({ mode, steps: steps.map(describeStep), text });
  }
  print({ runs, executed: calls });
} catch (error) {
  print({ runs, executed: calls, error: describeError(error) });
  process.exitCode = 1;
}
