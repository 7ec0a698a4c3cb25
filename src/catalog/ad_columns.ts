// The store's ads in id order as columns: text packed outside the JavaScript heap, the few-valued
// fields (campaign, advertiser, category, format) as codes into small dictionaries. A replica's
// catalog snapshot holds its ads this way, and a catalog is built from them by copying bytes, so a
// million ads load without a million row objects.
import type { AdRow, RowStatus, TargetingRules } from '../store/types';
import { PackedStrings, PackedStringsBuilder } from './packed_strings';

/** A store ad as serving reads it: everything but its keywords and bookkeeping. */
export type ServedAdRow = Omit<AdRow, 'keywords' | 'version' | 'created_at' | 'updated_at' | 'archived_at'>;

export const textColumns = ['id', 'product_id', 'title', 'landing_url', 'image_url', 'targeting', 'policy_flags'] as const;
export const codedColumns = ['campaign_id', 'advertiser_id', 'category', 'format'] as const;
export const numberColumns = ['price_micros', 'landing_quality', 'rating'] as const;
export const statuses: readonly RowStatus[] = ['active', 'paused', 'archived'];

export type TextColumn = (typeof textColumns)[number];
export type CodedColumn = (typeof codedColumns)[number];
export type NumberColumn = (typeof numberColumns)[number];

/** The UTF-8 of "[]": an ad without policy flags. */
const noFlags = '[]';

export class AdColumns {
  constructor(
    readonly text: Record<TextColumn, PackedStrings>,
    readonly codes: Record<CodedColumn, Uint32Array>,
    readonly dictionaries: Record<CodedColumn, string[]>,
    readonly numbers: Record<NumberColumn, Float64Array>,
    readonly status: Uint8Array,
  ) {}

  get length(): number {
    return this.status.length;
  }

  coded(column: CodedColumn, i: number): string {
    return this.dictionaries[column][this.codes[column][i]!]!;
  }

  /** Ad `i`'s targeting rules; null when untargeted. */
  targeting(i: number): TargetingRules | null {
    const text = this.text.targeting.utf8At(i)!;
    return text.length === 0 ? null : (JSON.parse(Buffer.from(text.buffer, text.byteOffset, text.length).toString('utf8')) as TargetingRules);
  }

  policyFlags(i: number): string[] {
    const text = this.text.policy_flags.at(i)!;
    return text === noFlags ? [] : (JSON.parse(text) as string[]);
  }

  /** Ad `i` as a row. */
  row(i: number): ServedAdRow {
    const text = (column: TextColumn) => this.text[column].at(i)!;
    return {
      id: text('id'),
      campaign_id: this.coded('campaign_id', i),
      advertiser_id: this.coded('advertiser_id', i),
      product_id: text('product_id'),
      category: this.coded('category', i),
      format: this.coded('format', i),
      title: text('title'),
      landing_url: text('landing_url'),
      image_url: text('image_url'),
      price_micros: this.numbers.price_micros[i]!,
      landing_quality: this.numbers.landing_quality[i]!,
      rating: this.numbers.rating[i]!,
      targeting: this.targeting(i),
      policy_flags: this.policyFlags(i),
      status: statuses[this.status[i]!]!,
    };
  }
}

export class AdColumnsBuilder {
  private readonly text = Object.fromEntries(textColumns.map((column) => [column, new PackedStringsBuilder()])) as Record<TextColumn, PackedStringsBuilder>;
  private readonly codes = Object.fromEntries(codedColumns.map((column) => [column, [] as number[]])) as Record<CodedColumn, number[]>;
  private readonly dictionaries = Object.fromEntries(codedColumns.map((column) => [column, new Map<string, number>()])) as Record<
    CodedColumn,
    Map<string, number>
  >;
  private readonly numbers: Record<NumberColumn, number[]> = { price_micros: [], landing_quality: [], rating: [] };
  private readonly status: number[] = [];

  push(row: ServedAdRow): void {
    for (const column of ['id', 'product_id', 'title', 'landing_url', 'image_url'] as const) this.text[column].push(row[column]);
    this.text.targeting.push(row.targeting?.length ? JSON.stringify(row.targeting) : '');
    this.text.policy_flags.push(row.policy_flags?.length ? JSON.stringify(row.policy_flags) : noFlags);
    for (const column of codedColumns) {
      const dictionary = this.dictionaries[column];
      let code = dictionary.get(row[column]);
      if (code === undefined) dictionary.set(row[column], (code = dictionary.size));
      this.codes[column].push(code);
    }
    for (const column of numberColumns) this.numbers[column].push(row[column]);
    this.status.push(statuses.indexOf(row.status));
  }

  finish(): AdColumns {
    const each = <C extends string, To>(columns: readonly C[], map: (column: C) => To) =>
      Object.fromEntries(columns.map((column) => [column, map(column)])) as Record<C, To>;
    return new AdColumns(
      each(textColumns, (column) => this.text[column].finish()),
      each(codedColumns, (column) => Uint32Array.from(this.codes[column])),
      each(codedColumns, (column) => [...this.dictionaries[column].keys()]),
      each(numberColumns, (column) => Float64Array.from(this.numbers[column])),
      Uint8Array.from(this.status),
    );
  }
}
