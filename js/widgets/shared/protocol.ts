// Requests to the kernel carry an id and get a Reply with that id (widgets/_protocol.py).
import type { AnyModel } from "./anywidget";

export interface Reply {
  kind: "reply";
  id: number;
  ok: boolean;
  error: string;
}

let nextId = 1;

/** Send `content` and wait for its reply; reject after `timeoutMs` or when `signal` aborts. */
export function request<T>(
  model: AnyModel<T>,
  content: Record<string, unknown>,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<Reply> {
  const id = nextId++;
  return new Promise<Reply>((resolve, reject) => {
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
      reject(new Error("[lenslab] request aborted"));
    };
    const timer = setTimeout(() => {
      finish();
      reject(new Error(`[lenslab] no reply to ${String(content.kind)} within ${timeoutMs} ms`));
    }, timeoutMs);
    model.on("msg:custom", onMessage);
    signal?.addEventListener("abort", onAbort);
    model.send({ ...content, id });
  });
}
