// Tokens shown as tokens: whitespace gets a visible mark, so " " or "\n" is never a blank cell
// and a leading space (" Paris" vs "Paris") can be seen.

const MARKS: Record<string, string> = { " ": "·", "\n": "↵", "\t": "⇥", "\r": "␍" };

export function visible(token: string): string {
  if (token === "") return "∅";
  return token.replace(/[ \n\t\r]/g, (c) => MARKS[c]);
}
