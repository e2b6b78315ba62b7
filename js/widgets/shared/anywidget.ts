// The slice of anywidget's front-end API that lenslab widgets use (mirrors @anywidget/types).

export type Callback = (...args: any[]) => void;

/** A widget model whose synced traits are described by T. */
export interface AnyModel<T> {
  get<K extends keyof T>(key: K): T[K];
  set<K extends keyof T>(key: K, value: T[K]): void;
  save_changes(): void;
  on(event: string, callback: Callback): void;
  off(event?: string | null, callback?: Callback | null): void;
  send(content: unknown, callbacks?: unknown, buffers?: ArrayBuffer[]): void;
}

export interface RenderProps<T> {
  model: AnyModel<T>;
  el: HTMLElement;
  signal?: AbortSignal;
}

/** Listen to `event` on the model until the returned cleanup runs. */
export function listen<T>(model: AnyModel<T>, event: string, callback: Callback): () => void {
  model.on(event, callback);
  return () => model.off(event, callback);
}

/** The traits every lenslab widget has (python/lenslab/widgets/_base.py). */
export interface BaseTraits {
  busy: boolean;
  error: string;
}
