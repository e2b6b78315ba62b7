// A row of toggle chips (layers, tokens): click toggles one, shift-click selects a range.
import { h, on } from "./dom";

export class Chips {
  readonly element: HTMLDivElement;
  private chips: HTMLSpanElement[] = [];
  private anchor: number | null = null;
  private cleanup: () => void;

  constructor(private onChange: (chosen: number[]) => void, private chosen: number[] = []) {
    this.element = h("div", { className: "lenslab-chips" });
    this.cleanup = on(this.element, "click", (event) => {
      const chip = (event.target as HTMLElement).closest<HTMLElement>(".lenslab-chip");
      if (!chip || chip.dataset.index === undefined) return;
      this.click(Number(chip.dataset.index), event.shiftKey);
    });
  }

  setLabels(labels: string[]): void {
    this.chips = labels.map((label, i) => {
      const chip = h("span", { className: "lenslab-chip", text: label });
      chip.dataset.index = String(i);
      return chip;
    });
    this.element.replaceChildren(...this.chips);
    this.setChosen(this.chosen);
  }

  setChosen(chosen: number[]): void {
    this.chosen = [...chosen];
    const set = new Set(chosen);
    this.chips.forEach((chip, i) => chip.classList.toggle("lenslab-on", set.has(i)));
  }

  dispose(): void {
    this.cleanup();
  }

  private click(index: number, range: boolean): void {
    const set = new Set(this.chosen);
    if (range && this.anchor !== null) {
      const [a, b] = [Math.min(this.anchor, index), Math.max(this.anchor, index)];
      for (let i = a; i <= b; i++) set.add(i);
    } else if (set.has(index)) {
      set.delete(index);
    } else {
      set.add(index);
    }
    this.anchor = index;
    const chosen = [...set].sort((x, y) => x - y);
    this.setChosen(chosen);
    this.onChange(chosen);
  }
}
