import type { Catalog } from '../catalog/catalog';
import type { LedgerState } from './ledger';

/** Frequency caps: at most N impressions per user per campaign within a sliding window. */
export class FrequencyCaps {
  constructor(
    private readonly catalog: Catalog,
    private readonly state: LedgerState,
  ) {}

  capped(campaignId: string, user: string, nowMs: number): boolean {
    const cap = this.catalog.campaignFrequencyCap.get(campaignId);
    if (!cap) return false;
    const times = this.state.impressions.get(`${campaignId}\u0000${user}`);
    if (!times) return false;
    const since = nowMs - cap.windowSeconds * 1000;
    while (times.length > 0 && times[0]! <= since) times.shift();
    return times.length >= cap.impressions;
  }
}
