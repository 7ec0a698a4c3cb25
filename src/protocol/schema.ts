// The wire protocol's generated TypeScript (flatc, from schemas/*.fbs, into build/gen/ts).
export { AdRequest } from '../../build/gen/ts/adserve/fb/ad-request';
export { AdResponse } from '../../build/gen/ts/adserve/fb/ad-response';
export { Ad } from '../../build/gen/ts/adserve/fb/ad';
export { Creative } from '../../build/gen/ts/adserve/fb/creative';
export { Event } from '../../build/gen/ts/adserve/fb/event';
export { EventType } from '../../build/gen/ts/adserve/fb/event-type';
export { Placement } from '../../build/gen/ts/adserve/fb/placement';
export { AuctionType } from '../../build/gen/ts/adserve/fb/auction-type';
export { BidType } from '../../build/gen/ts/adserve/fb/bid-type';
export { DeviceType } from '../../build/gen/ts/adserve/fb/device-type';
export { Gender } from '../../build/gen/ts/adserve/fb/gender';
export { Geo } from '../../build/gen/ts/adserve/fb/geo';
export { Device } from '../../build/gen/ts/adserve/fb/device';
export { User } from '../../build/gen/ts/adserve/fb/user';
export { ResponseStatus } from '../../build/gen/ts/adserve/fb/response-status';
export { StageTiming } from '../../build/gen/ts/adserve/fb/stage-timing';
export { NoFillReason } from '../../build/gen/ts/adserve/fb/no-fill-reason';
