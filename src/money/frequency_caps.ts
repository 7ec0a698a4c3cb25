import type { Catalog } from '../catalog/catalog';
import type { SpendStore } from './spend_store';

/** A user's recent impression times per campaign; null when the store could not be read. */
export type ImpressionHistory = Map<string, number[]> | undefined | null;

/** Frequency caps: at most N impressions per user per campaign within a sliding window. */
export class FrequencyCaps {
  /** The longest cap window of the catalog (0: no campaign is capped). */
  longestWindowMs = 0;

  constructor(
    private readonly catalog: Catalog,
    private readonly store: SpendStore,
  ) {
    this.refresh();
  }

  /** Follows a change of the catalog's caps. */
  refresh(): void {
    this.longestWindowMs = Math.max(0, ...Array.from(this.catalog.campaignFrequencyCap.values(), (cap) => cap.windowSeconds * 1000));
  }

  /** Starts reading a user's history (nothing to read for anonymous users or an uncapped catalog). */
  history(user: string, nowMs: number, timeoutMs: number): Promise<ImpressionHistory> | undefined {
    if (user === '' || this.longestWindowMs === 0) return undefined;
    return this.store.impressionsOf(user, nowMs - this.longestWindowMs, timeoutMs).catch(() => null);
  }

  /** Campaigns the user has reached the cap of; with unknown history (null), every capped campaign. */
  cappedCampaigns(history: ImpressionHistory, nowMs: number): string[] {
    const { campaignFrequencyCap } = this.catalog;
    // Unknown history: keep capped campaigns out rather than risk showing them past their cap.
    if (history === null) return Array.from(campaignFrequencyCap.keys());
    const capped: string[] = [];
    if (!history) return capped;
    for (const [campaignId, times] of history) {
      const cap = campaignFrequencyCap.get(campaignId);
      if (!cap) continue;
      const since = nowMs - cap.windowSeconds * 1000;
      let recent = times.length;
      for (const time of times) if (time <= since) recent--;
      if (recent >= cap.impressions) capped.push(campaignId);
    }
    return capped;
  }
}
