// Requests to the kernel carry an id and get a Reply with that id (widgets/_protocol.py).
import type { AnyModel } from "./anywidget";

export interface Reply {
  kind: "reply";
  id: number;
  ok: boolean;
  error: string;
}

let nextId = 1;

function abortMessage(signal: AbortSignal): string {
  const why: unknown = signal.reason;
  return why instanceof Error ? why.message : "[lenslab] request aborted";
}

/**
 * Send `content` and wait for its reply; reject after `timeoutMs`, when `signal` aborts (the
 * kernel went away, or the view closed), or at once when the message cannot be sent.
 */
export function request<T>(
  model: AnyModel<T>,
  content: Record<string, unknown>,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<Reply> {
  const id = nextId++;
  return new Promise<Reply>((resolve, reject) => {
    if (signal?.aborted) {
      reject(new Error(abortMessage(signal)));
      return;
    }
    const finish = (): void => {
      clearTimeout(timer);
      model.off("msg:custom", onMessage);
      signal?.removeEventListener("abort", onAbort);
    };
    const onMessage = (message: Partial<Reply>): void => {
      if (message.kind !== "reply" || message.id !== id) return;
      finish();
      if (message.ok) resolve(message as Reply);
      else reject(new Error(message.error ?? "request failed"));
    };
    const onAbort = (): void => {
      finish();
      reject(new Error(abortMessage(signal!)));
    };
    const timer = setTimeout(() => {
      finish();
      reject(new Error(`[lenslab] no reply to ${String(content.kind)} within ${timeoutMs} ms`));
    }, timeoutMs);
    model.on("msg:custom", onMessage);
    signal?.addEventListener("abort", onAbort);
    try {
      model.send({ ...content, id });
    } catch (problem) {
      finish();
      reject(new Error(`[lenslab] could not reach the kernel: ${String(problem)}`));
    }
  });
}
