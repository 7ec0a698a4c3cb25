// Money units. Prices, bids and budgets are integer micros (1e-6 of the currency); spend is kept in
// integer nanos (1e-9) so that a CPM impression, which costs price_micros / 1000 micros, costs
// price_micros nanos exactly and no charge is ever rounded. Every conversion goes through here.
export type Micros = number;
export type Nanos = number;

const nanosPerMicro = 1000;

export function nanosOfMicros(micros: Micros): Nanos {
  return micros * nanosPerMicro;
}

/** Exact for every whole-micro amount; a CPM charge may leave a fraction of a micro. */
export function microsOfNanos(nanos: Nanos): Micros {
  return nanos / nanosPerMicro;
}
