// LayerPicker: layers, component and token positions; the kernel reads them as a Selection.
import { type RenderProps, type BaseTraits, listen } from "../shared/anywidget";
import { Chips } from "../shared/chips";
import { frame } from "../shared/connection";
import { h, on } from "../shared/dom";
import { visible } from "../shared/tokens";

interface Traits extends BaseTraits {
  num_layers: number;
  tokens: string[];
  layers: number[];
  component: string;
  positions: number[];
}

const COMPONENTS: [string, string][] = [
  ["resid", "residual stream"],
  ["attn", "attention"],
  ["mlp", "MLP"],
];

function render({ model, el }: RenderProps<Traits>): () => void {
  const { root, dispose } = frame(el, model, "layer_picker");
  const cleanups: (() => void)[] = [];
  const commit = <K extends keyof Traits>(key: K, value: Traits[K]): void => {
    model.set(key, value);
    model.save_changes();
  };
  const layers = new Chips((chosen) => commit("layers", chosen), model.get("layers"));
  const positions = new Chips((chosen) => commit("positions", chosen), model.get("positions"));
  const radios = h("div", { className: "lenslab-row" });
  for (const [value, label] of COMPONENTS) {
    const input = h("input");
    input.type = "radio";
    input.name = `lenslab-component-${Math.random().toString(36).slice(2)}`;
    input.value = value;
    input.dataset.component = value;
    cleanups.push(on(input, "change", () => input.checked && commit("component", value)));
    radios.append(h("label", {}, [input, ` ${label}`]));
  }
  const all = h("button", { text: "all layers" });
  const none = h("button", { text: "clear" });
  const summary = h("code", { className: "lenslab-code" });
  root.append(
    h("div", { className: "lenslab-row" }, [h("b", { text: "Layers" }), all, none]),
    layers.element,
    h("b", { text: "Component" }),
    radios,
    h("b", { text: "Token positions" }),
    positions.element,
    summary,
  );
  cleanups.push(
    on(all, "click", () => commit("layers", [...Array(model.get("num_layers")).keys()])),
    on(none, "click", () => commit("layers", [])),
  );

  const draw = (): void => {
    layers.setLabels([...Array(model.get("num_layers")).keys()].map(String));
    const tokens = model.get("tokens");
    positions.setLabels(
      tokens.map((t, i) => `${i}:${visible(t)}`),
      tokens.map((t, i) => `position ${i}: ${JSON.stringify(t)}`),
    );
    sync();
  };
  const sync = (): void => {
    layers.setChosen(model.get("layers"));
    positions.setChosen(model.get("positions"));
    for (const input of radios.querySelectorAll("input")) {
      input.checked = input.value === model.get("component");
    }
    summary.textContent =
      `layers=${JSON.stringify(model.get("layers"))}, component="${model.get("component")}", ` +
      `positions=${JSON.stringify(model.get("positions"))}`;
  };
  cleanups.push(
    listen(model, "change:num_layers change:tokens", draw),
    listen(model, "change:layers change:positions change:component", sync),
  );
  draw();
  return () => {
    cleanups.forEach((cleanup) => cleanup());
    layers.dispose();
    positions.dispose();
    dispose();
  };
}

export default { render };
