// SteeringPanel: layers and a coefficient slider (debounced); baseline and steered side by side.
import { type RenderProps, type BaseTraits, listen } from "../shared/anywidget";
import { Chips } from "../shared/chips";
import { frame } from "../shared/connection";
import { debounce, h, on } from "../shared/dom";
import { RUN_EVENTS, RunStatus, type RunTraits } from "../shared/runs";

interface Traits extends BaseTraits, RunTraits {
  prompt: string;
  num_layers: number;
  layers: number[];
  coefficient: number;
  low: number;
  high: number;
  source: string;
  baseline: string;
  steered: string;
  runs: number;
  shown_coefficient: number | null;
  shown_layers: number[];
}

const DEBOUNCE_MS = 350;

/** One decimal on the slider's scale, more where code set a finer value (0.25 stays 0.25). */
function formatCoefficient(value: number): string {
  return Number.isInteger(value * 10) ? value.toFixed(1) : String(Number(value.toPrecision(4)));
}

function render({ model, el }: RenderProps<Traits>): () => void {
  const { root, connection, dispose } = frame(el, model, "steering_panel");
  const slider = h("input");
  slider.type = "range";
  slider.step = "0.1";
  slider.dataset.keys = ""; // arrow keys move the slider, not the notebook's cells
  slider.style.width = "260px";
  const value = h("code", { className: "lenslab-code" });
  const busy = h("span");
  const run = new RunStatus(model, connection);
  const error = h("div", { className: "lenslab-error" });
  const layers = new Chips((chosen) => {
    if (run.running) run.note(`queued: layers ${chosen.join(", ")} run when this generation stops`, "queued");
    model.set("layers", chosen);
    model.save_changes();
  }, model.get("layers"));
  const baseline = h("div", { className: "lenslab-text" });
  const steered = h("div", { className: "lenslab-text" });
  const steeredTitle = h("b");
  baseline.dataset.role = "baseline";
  steered.dataset.role = "steered";
  root.append(
    h("div", { className: "lenslab-title", text: "Steering" }),
    h("div", { className: "lenslab-muted", text: `vector: ${model.get("source")}` }),
    h("div", { className: "lenslab-row" }, [h("b", { text: "Layers" })]),
    layers.element,
    h("div", { className: "lenslab-row" }, [h("b", { text: "Coefficient" }), slider, value, busy]),
    run.element,
    error,
    h("div", { className: "lenslab-columns" }, [
      h("div", {}, [h("b", { text: "baseline" }), baseline]),
      h("div", {}, [steeredTitle, steered]),
    ]),
  );

  const send = debounce((coefficient: number) => {
    model.set("coefficient", coefficient);
    model.save_changes();
  }, DEBOUNCE_MS);

  const draw = (): void => {
    slider.min = String(model.get("low"));
    slider.max = String(model.get("high"));
    slider.value = String(model.get("coefficient"));
    value.textContent = formatCoefficient(model.get("coefficient"));
    layers.setLabels([...Array(model.get("num_layers")).keys()].map(String));
    layers.setChosen(model.get("layers"));
    baseline.textContent = model.get("baseline");
    steered.textContent = model.get("steered");
    // The header names the setting of the text below it, so it changes with that text.
    const shown = model.get("shown_coefficient");
    const at = model.get("shown_layers");
    steeredTitle.textContent =
      shown === null ? "steered" : `steered (×${formatCoefficient(shown)}, layers ${at.join(", ")})`;
    steeredTitle.dataset.coefficient = shown === null ? "" : String(shown);
    root.dataset.runs = String(model.get("runs"));
  };
  // `busy` is only the slider's own "waiting…" (a move not yet sent); the generation's
  // progress, time left, queue and Cancel are `run`'s.
  const drawBusy = (): void => {
    busy.className = "";
    busy.textContent = "";
    if (connection.live) error.textContent = model.get("error");
  };

  const cleanups = [
    on(slider, "input", () => {
      const next = Number(slider.value);
      value.textContent = formatCoefficient(next);
      if (run.running) {
        // the kernel stops the running generation and runs the latest setting next
        run.note(`queued: ×${formatCoefficient(next)} runs when this generation stops`, "queued");
      } else {
        busy.className = "lenslab-busy";
        busy.textContent = "waiting…";
      }
      send.call(next);
    }),
    listen(
      model,
      "change:coefficient change:layers change:baseline change:steered change:runs change:low change:high change:shown_coefficient change:shown_layers",
      draw,
    ),
    listen(model, `${RUN_EVENTS} change:error`, drawBusy),
    connection.onLost(() => {
      send.cancel(); // a pending slider value would be dropped by the manager anyway
      drawBusy();
    }),
  ];
  draw();
  drawBusy();
  return () => {
    send.cancel();
    cleanups.forEach((cleanup) => cleanup());
    layers.dispose();
    run.dispose();
    dispose();
  };
}

export default { render };
