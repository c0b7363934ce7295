import { decideLocally } from "./decide.js";
import type { EntitlementSet } from "./gen/entitlements/v1/entitlements_pb.js";
import type { Check, CheckResult } from "./types.js";

/** A watch call's streams, one at a time: when the current one last said anything (a state or a heartbeat). */
export interface Stream {
  heardAt: number;
}

/** A watched subject's latest state as one watch call's stream sent it. */
export interface Watched {
  state: EntitlementSet;
  stream: Stream;
}

/**
 * The watched subjects' states, per watch call that names them (usually one), so that one call's broken
 * stream drops only what it sent; answers from a stream silent for longer than `staleAfterMs` say stale.
 */
export class LocalStates {
  private readonly states = new Map<string, Watched[]>();

  constructor(private readonly staleAfterMs: number) {}

  has(subject: string): boolean {
    return this.states.has(subject);
  }

  /** The sidecar's answer from what the streams sent (undefined: no stream has the subject), at `now` ms. */
  decide(subject: string, check: Check, now: number): CheckResult | undefined {
    const entries = this.states.get(subject);
    if (entries === undefined) return undefined;
    const silent = (entry: Watched) => now - entry.stream.heardAt > this.staleAfterMs;
    // A live stream's state before a silent one's, then the latest version.
    const best = entries.reduce((a, b) =>
      silent(a) !== silent(b) ? (silent(a) ? b : a) : (b.state.freshness?.version ?? 0n) > (a.state.freshness?.version ?? 0n) ? b : a);
    const result = decideLocally(best.state, check);
    // A silent stream: the sidecar may be missing changes, or be gone.
    return silent(best) ? { ...result, stale: true } : result;
  }

  put(subject: string, entry: Watched): void {
    const others = (this.states.get(subject) ?? []).filter((e) => e.stream !== entry.stream);
    this.states.set(subject, [...others, entry]);
  }

  drop(subject: string, stream: Stream): void {
    const rest = (this.states.get(subject) ?? []).filter((e) => e.stream !== stream);
    if (rest.length > 0) this.states.set(subject, rest);
    else this.states.delete(subject);
  }

  clear(): void {
    this.states.clear();
  }
}
