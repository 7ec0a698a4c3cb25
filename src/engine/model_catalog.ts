// The catalog a model serves with: the catalog's ads (the store's, or a catalog file's) joined with
// the model's rows by id. Row i of the catalog is row i of the model's ad tensors, so the engine
// loads the trained embeddings as they are: a model ad the catalog lacks becomes a retired row, and
// a catalog ad the model was not trained on is left to be embedded by its ad tower (StoreSync).
import type { AdColumns } from '../catalog/ad_columns';
import { effectiveTargeting, type ServedAd } from '../catalog/ad_content';
import { type Catalog, CatalogBuilder, CatalogError, type CatalogOptions, retireAd } from '../catalog/catalog';
import { readCatalogFile } from '../catalog/catalog_file';
import type { CatalogCampaign, TargetingCriterion } from '../catalog/catalog_json';
import type { AdTargeting } from './addon';
import type { ModelDir } from './model_dir';

type Rules = readonly (readonly TargetingCriterion[])[];

/** The engine's bound on an ad's targeting rules (TargetingIndex::kMaxRulesPerAd). */
export const maxRulesPerAd = 20;

export interface ServingCatalog {
  catalog: Catalog;
  /** Each targeted ad's rules (its own AND its campaign's), for the engine at load. */
  targeting: AdTargeting[];
  /** Ads held out because their rules, with their campaign's, exceed maxRulesPerAd. */
  tooManyRules: string[];
}

/**
 * Takes the catalog's ads in ascending id order and lays them out in the model's row order, which
 * ascends too (model_dir.ts checks it), so one pass over both suffices.
 */
export class ModelCatalogJoin {
  private readonly builder: CatalogBuilder;
  private readonly campaignRules: Map<string, Rules>;
  private readonly campaignOnlyRules = new Map<string, TargetingCriterion[][]>();
  private readonly targeting: AdTargeting[] = [];
  private readonly tooManyRules: Array<{ index: number; id: string }> = [];
  private row = 0;
  private lastId: Uint8Array | undefined;

  constructor(
    private readonly model: ModelDir,
    campaigns: ReadonlyArray<CatalogCampaign & { targeting?: Rules | null }>,
    options?: CatalogOptions,
  ) {
    this.builder = new CatalogBuilder(campaigns, options);
    this.campaignRules = new Map(campaigns.flatMap((campaign) => (campaign.targeting?.length ? [[campaign.id, campaign.targeting]] : [])));
  }

  /** Adds the next catalog ad; returns its row, or undefined when the model was not trained on it. */
  add(ad: ServedAd): number | undefined {
    if (!this.advanceTo(Buffer.from(ad.id))) return undefined;
    return this.took(this.builder.add(ad), ad.id, ad.targeting, ad.campaign_id);
  }

  /** add() for ad `i` of a snapshot's columns, its text copied as bytes. */
  addFrom(columns: AdColumns, i: number): number | undefined {
    if (!this.advanceTo(columns.text.id.utf8At(i)!)) return undefined;
    const campaignId = columns.coded('campaign_id', i);
    return this.took(this.builder.addFrom(columns, i), () => columns.text.id.at(i)!, columns.targeting(i), campaignId);
  }

  /** Adds the model's rows before `id` as absent; returns whether the next model row is `id`'s. */
  private advanceTo(id: Uint8Array): boolean {
    if (this.lastId !== undefined && Buffer.compare(id, this.lastId) <= 0)
      throw new CatalogError(`catalog ads must ascend by id: ${Buffer.from(id).toString()} after ${Buffer.from(this.lastId).toString()}`);
    this.lastId = id;
    const { adIds } = this.model;
    for (let model = adIds.utf8At(this.row); model !== undefined && Buffer.compare(model, id) < 0; model = adIds.utf8At(this.row)) {
      this.builder.addAbsent(adIds.at(this.row)!);
      this.row++;
    }
    const model = adIds.utf8At(this.row);
    if (model === undefined || Buffer.compare(model, id) !== 0) return false;
    this.row++;
    return true;
  }

  private took(index: number, id: string | (() => string), own: Rules | null | undefined, campaignId: string): number {
    const campaign = this.campaignRules.get(campaignId);
    // Untargeted ads of a targeted campaign share its rules.
    const rules = own?.length ? effectiveTargeting(own, campaign) : campaign ? this.campaignOnly(campaignId, campaign) : [];
    if (rules.length > maxRulesPerAd) this.tooManyRules.push({ index, id: typeof id === 'string' ? id : id() });
    else if (rules.length > 0) this.targeting.push({ ad: index, rules });
    return index;
  }

  private campaignOnly(campaignId: string, campaign: Rules): TargetingCriterion[][] {
    let rules = this.campaignOnlyRules.get(campaignId);
    if (!rules) this.campaignOnlyRules.set(campaignId, (rules = effectiveTargeting(undefined, campaign)));
    return rules;
  }

  finish(): ServingCatalog {
    const { adIds } = this.model;
    for (; this.row < adIds.length; this.row++) this.builder.addAbsent(adIds.at(this.row)!);
    const catalog = this.builder.build();
    for (const { index } of this.tooManyRules) retireAd(catalog, index);
    return { catalog, targeting: this.targeting, tooManyRules: this.tooManyRules.map(({ id }) => id) };
  }
}

/**
 * The model's own catalog file (catalog.jsonl) joined with its rows: for tools and tests, and for a
 * daemon whose store has not taken that catalog. Its ads the model was not trained on are left out.
 */
export function catalogFromFile(model: ModelDir, options?: CatalogOptions): ServingCatalog {
  if (!model.seedCatalog) throw new CatalogError(`${model.dir} has no catalog.jsonl`);
  const json = readCatalogFile(model.seedCatalog.file);
  const join = new ModelCatalogJoin(model, json.campaigns, options);
  for (const ad of [...json.ads].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))) join.add(ad);
  return join.finish();
}
