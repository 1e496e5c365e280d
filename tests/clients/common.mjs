// Shared by the client scripts: arguments, output, and errors as plain JSON.

export function parseArguments() {
  const [baseURL, model] = process.argv.slice(2);
  if (!baseURL || !model) {
    console.error("usage: node SCRIPT BASE_URL MODEL");
    process.exit(2);
  }
  return { baseURL, model };
}

export function print(value) {
  process.stdout.write(JSON.stringify(value) + "\n");
}

export function describeError(error) {
  return {
    name: error?.name ?? null,
    status: error?.status ?? error?.statusCode ?? null,
    message: String(error?.message ?? error).slice(0, 2000),
    body: error?.error ?? error?.responseBody ?? null,
  };
}
