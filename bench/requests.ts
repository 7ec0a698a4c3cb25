// Benchmark traffic: many distinct AdRequests, so nothing downstream can serve a cached answer.
// Users follow a Zipf-like law over the demo's known users, with a share of unknown ones; placements
// are mixed; search queries are built from the demo catalog's vocabulary.
import { encodeAdRequest } from '../src/protocol/encode_request';
import { DeviceType, Placement } from '../src/protocol/schema';

const words = [
  'running',
  'shoes',
  'usb',
  'cable',
  'organic',
  'coffee',
  'kids',
  'rain',
  'boots',
  'tv',
  '4k',
  'dog',
  'food',
  'yoga',
  'mat',
  'lamp',
  'novel',
  'drill',
  'vitamins',
  'console',
  'necklace',
  'blender',
  'jeans',
  'lego',
];
const modifiers = ['best', 'cheap', 'new', 'for', 'men', 'women', 'pro', 'set'];
const placements = [Placement.Search, Placement.Search, Placement.ProductPage, Placement.Category, Placement.Homepage, Placement.Cart];
const categories = ['shoes', 'electronics', 'grocery', 'pets', 'kids', 'home', 'kitchen', 'beauty', 'sports', 'fashion'];
const countries = ['US', 'GB', 'DE', 'FR', 'CA', 'JP'];

/** `count` distinct requests; `slots` fixes every request's slot count (1-4 at random otherwise). */
export function benchRequests(count: number, seed = 1, slots?: number): Buffer[] {
  let state = seed;
  const random = (): number => {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    return state / 2 ** 31;
  };
  const pick = <T>(values: readonly T[]): T => values[Math.floor(random() * values.length)]!;
  return Array.from({ length: count }, (_, i) => {
    const placement = pick(placements);
    // Rank ~ 1 / (u^1.2): heavy head of frequent users; 10 % unknown users.
    const rank = Math.floor(1 / Math.pow(1 - random() * 0.999, 1.2));
    const userId = random() < 0.1 ? `anon-${i}` : `u${String(rank % 20_000).padStart(7, '0')}`;
    const query =
      placement === Placement.Search
        ? [random() < 0.3 ? pick(modifiers) : '', pick(words), random() < 0.6 ? pick(words) : ''].filter(Boolean).join(' ')
        : undefined;
    return Buffer.from(
      encodeAdRequest({
        id: `bench-${i}`,
        placement,
        query,
        userId,
        categoryId: placement === Placement.Category || placement === Placement.ProductPage ? pick(categories) : undefined,
        productId:
          placement === Placement.ProductPage || placement === Placement.Cart ? `p${String(Math.floor(random() * 20_000)).padStart(8, '0')}` : undefined,
        country: pick(countries),
        deviceType: pick([DeviceType.Desktop, DeviceType.Mobile, DeviceType.Mobile, DeviceType.App]),
        slots: slots ?? 1 + Math.floor(random() * 4),
        page: Math.floor(random() * 3),
      }),
    );
  });
}
