// A multi-step tool loop through the Vercel AI SDK (Responses API, store: true).
import { generateText, stepCountIs, tool } from "ai";
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

try {
  const result = await generateText({
    model: openai.responses(modelName),
    tools: { weather },
    stopWhen: stepCountIs(5),
    prompt: "What is the weather in Paris?",
  });
  print({
    turns: result.steps.map((step) => ({
      text: step.text,
      reasoning: step.reasoningText ?? null,
      toolCalls: step.toolCalls.map((call) => ({ name: call.toolName, input: call.input })),
      finishReason: step.finishReason,
      responseId: step.providerMetadata?.openai?.responseId ?? step.response?.id ?? null,
    })),
    executed: calls,
    text: result.text,
  });
} catch (error) {
  print({ executed: calls, error: describeError(error) });
  process.exitCode = 1;
}
