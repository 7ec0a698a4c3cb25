// Stage "exclusions": the campaigns the engine must keep out of this request's retrieval, those
// the user reached the frequency cap of and those pacing sits out of this auction.
import type { FrequencyCaps } from '../money/frequency_caps';
import type { Pacer } from '../money/pacing';
import type { Clock, RandomSource } from './clock';
import type { DecisionScratch } from './scratch';

export interface ExclusionSources {
  frequency: Pick<FrequencyCaps, 'history' | 'cappedCampaigns'>;
  pacer: Pick<Pacer, 'sittingOut'>;
  /** Each campaign's code in the engine's exclusions. */
  campaignCode: ReadonlyMap<string, number>;
}

/**
 * Campaign codes to exclude. The user's recent impressions are read first, since retrieval applies
 * the caps: with shared state a round trip to Redis, only for identified users of a catalog with
 * capped campaigns. One participation draw of `random` per throttled campaign.
 */
export async function excludedCampaigns(
  sources: ExclusionSources,
  userId: string,
  budgetMs: number,
  clock: Clock,
  random: RandomSource,
  scratch: DecisionScratch,
): Promise<Uint32Array> {
  const impressions = await sources.frequency.history(userId, clock.now(), budgetMs);
  const capped = sources.frequency.cappedCampaigns(impressions, clock.now());
  const throttled = sources.pacer.sittingOut(random);
  if (capped.length + throttled.length === 0) return scratch.noExclusions;
  const codes = new Uint32Array(capped.length + throttled.length);
  let count = 0;
  for (const campaignId of capped) codes[count++] = sources.campaignCode.get(campaignId)!;
  for (const campaignId of throttled) {
    // Pacing is process-wide: a campaign only another model's catalog lists has no code here.
    const code = sources.campaignCode.get(campaignId);
    if (code !== undefined) codes[count++] = code;
  }
  return count === codes.length ? codes : codes.subarray(0, count);
}
