// A row of toggle chips (layers, tokens): click or Space/Enter toggles one, shift selects a
// range; arrow keys, Home and End move the focus (one tab stop for the whole row).
import { h, on } from "./dom";
import { step } from "./keys";

export class Chips {
  readonly element: HTMLDivElement;
  private chips: HTMLSpanElement[] = [];
  private anchor: number | null = null;
  private focused = 0;
  private cleanups: (() => void)[];

  constructor(private onChange: (chosen: number[]) => void, private chosen: number[] = []) {
    this.element = h("div", { className: "lenslab-chips" });
    this.element.setAttribute("role", "group");
    const indexOf = (event: Event): number | null => {
      const chip = (event.target as HTMLElement).closest<HTMLElement>(".lenslab-chip");
      return chip?.dataset.index === undefined ? null : Number(chip.dataset.index);
    };
    this.cleanups = [
      on(this.element, "click", (event) => {
        const index = indexOf(event);
        if (index !== null) this.click(index, event.shiftKey);
      }),
      on(this.element, "keydown", (event) => {
        const index = indexOf(event);
        if (index === null) return;
        const next = step(event.key, index, this.chips.length, false);
        if (next !== null) this.focus(next);
        else if (event.key === " " || event.key === "Enter") this.click(index, event.shiftKey);
        else return;
        event.preventDefault();
        event.stopPropagation();
      }),
    ];
  }

  setLabels(labels: string[], titles: string[] = labels): void {
    this.chips = labels.map((label, i) => {
      const chip = h("span", { className: "lenslab-chip", text: label, title: titles[i] });
      chip.dataset.index = String(i);
      chip.dataset.keys = "";
      chip.setAttribute("role", "checkbox");
      return chip;
    });
    this.focused = Math.min(this.focused, Math.max(0, labels.length - 1));
    this.element.replaceChildren(...this.chips);
    this.setChosen(this.chosen);
  }

  setChosen(chosen: number[]): void {
    this.chosen = [...chosen];
    const set = new Set(chosen);
    this.chips.forEach((chip, i) => {
      chip.classList.toggle("lenslab-on", set.has(i));
      chip.setAttribute("aria-checked", String(set.has(i)));
      chip.tabIndex = i === this.focused ? 0 : -1;
    });
  }

  dispose(): void {
    this.cleanups.forEach((cleanup) => cleanup());
  }

  private focus(index: number): void {
    this.focused = index;
    this.chips.forEach((chip, i) => (chip.tabIndex = i === index ? 0 : -1));
    this.chips[index]?.focus();
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
    this.focused = index;
    const chosen = [...set].sort((x, y) => x - y);
    this.setChosen(chosen);
    this.onChange(chosen);
  }
}
