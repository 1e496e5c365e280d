// Turns chained with previous_response_id through the OpenAI Node SDK.
import OpenAI from "openai";
import { describeError, parseArguments, print } from "./common.mjs";

const { baseURL, model } = parseArguments();
const client = new OpenAI({ baseURL, apiKey: "placeholder-the-proxy-injects-the-key", maxRetries: 0, timeout: 30_000 });

function summary(response) {
  return {
    id: response.id,
    previousResponseId: response.previous_response_id ?? null,
    store: response.store ?? null,
    status: response.status,
    text: response.output_text,
    reasoning: response.output
      .filter((item) => item.type === "reasoning")
      .flatMap((item) => item.summary.map((part) => part.text))
      .join("\n"),
  };
}

const turns = [];
try {
  const first = await client.responses.create({ model, input: "My name is Ada.", instructions: "Be brief." });
  turns.push(summary(first));
  const stream = client.responses.stream({ model, input: "What is my name?", previous_response_id: first.id });
  const second = await stream.finalResponse();
  turns.push(summary(second));
  const third = await client.responses.create({ model, input: "Spell it.", previous_response_id: second.id });
  turns.push(summary(third));
  let unknown = null;
  try {
    await client.responses.create({ model, input: "Hello?", previous_response_id: "resp_does_not_exist" });
  } catch (error) {
    unknown = describeError(error);
  }
  print({ turns, unknown });
} catch (error) {
  print({ turns, error: describeError(error) });
  process.exitCode = 1;
}
