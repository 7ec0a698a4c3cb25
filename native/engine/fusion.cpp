#include "engine/fusion.h"

#include <algorithm>
#include <cstring>
#include <exception>

#include <omp.h>

#include "engine/build_info.h"
#include "engine/errors.h"
#include "engine/huge_pages.h"
#include "engine/prefetch.h"
#include "engine/tensors.h"

namespace adserve {

namespace {

// Eight running sums in a fixed pattern, added in a fixed tree: the compiler can keep them in
// vector registers, and the result depends only on the two vectors, not on what else is scored.
float dot(const float* a, const float* b, size_t n) {
  float partial[8] = {};
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (size_t j = 0; j < 8; ++j) partial[j] += a[i + j] * b[i + j];
  }
  for (; i < n; ++i) partial[i % 8] += a[i] * b[i];
  return ((partial[0] + partial[1]) + (partial[2] + partial[3])) + ((partial[4] + partial[5]) + (partial[6] + partial[7]));
}

// W_ad · E_ad of one ad (a row of fp32, or of bf16, which widens to fp32 exactly) plus its request's term.
void addProjection(const void* row, bool bf16, const float* requestTerm, size_t hidden, float* out) {
  if (!bf16) {
    const auto* projection = static_cast<const float*>(row);
    for (size_t h = 0; h < hidden; ++h) out[h] = projection[h] + requestTerm[h];
    return;
  }
  const auto* projection = static_cast<const uint16_t*>(row);
  for (size_t h = 0; h < hidden; ++h) {
    const uint32_t bits = static_cast<uint32_t>(projection[h]) << 16;
    float widened;
    std::memcpy(&widened, &bits, sizeof widened);
    out[h] = widened + requestTerm[h];
  }
}

// Rows of one fusion block: a multiple of every kernel variant's row tile.
constexpr size_t kFusionBlockRows = 96;

}  // namespace

Fusion::Fusion(const Model& model, const torch::Tensor& adEmbeddings, size_t pairWidth, const std::string& mode,
               const std::string& precision, const std::string& kernel)
    : model_(model), dim_(static_cast<size_t>(adEmbeddings.size(1))) {
  if (precision != "fp32" && precision != "bf16" && precision != "int16" && precision != "auto")
    throw EngineError(ErrorCode::InvalidArgument, "fusion precision must be 'fp32', 'bf16', 'int16' or 'auto'");
  if (mode == "precomputed") {
    if (model.scoresIds()) throw EngineError(ErrorCode::InvalidArgument, "a scorer that takes ad ids needs fusion 'model'");
    c10::InferenceMode inference;
    const torch::Tensor w0 = model.parameter("fusion.0.weight");
    const auto d = static_cast<int64_t>(dim_);
    if (w0.size(1) != 3 * d + 3 + static_cast<int64_t>(pairWidth))
      throw EngineError(ErrorCode::Model, "fusion.0.weight does not match [E_user, E_ctx, E_ad, dots, pair]");
    using Activation = DenseKernel::Activation;
    // Linear layers in torch's [outputs x inputs] layout; the kernels copy what they keep.
    using Precision = DenseKernel::Precision;
    // "auto" takes a reduced precision only where the CPU has its instruction: bf16's emulation
    // is slower than fp32, and int16 without VNNI no faster (docs/engine.md). bf16 comes first
    // where both are native: it needs no per-row quantization.
    if (precision != "auto") {
      precision_ = precision;
    } else if (const std::string bf16Kernel = DenseKernel::variants(Precision::kBf16).front();
               bf16Kernel == "amx" || bf16Kernel == "avx512bf16") {
      precision_ = "bf16";
    } else {
      precision_ = DenseKernel::variants(Precision::kInt16).front() == "avx512vnni" ? "int16" : "fp32";
    }
    const Precision hiddenPrecision = precision_ == "int16"  ? Precision::kInt16
                                      : precision_ == "bf16" ? Precision::kBf16
                                                             : Precision::kFp32;
    const auto dense = [](const torch::Tensor& weight, const torch::Tensor& bias, Activation activation,
                          Precision precision = Precision::kFp32, const std::string& variant = "") {
      const torch::Tensor w = weight.to(torch::kFloat32).contiguous();
      const torch::Tensor b = bias.defined() ? bias.to(torch::kFloat32).contiguous() : torch::Tensor();
      return DenseKernel(w.data_ptr<float>(), b.defined() ? b.data_ptr<float>() : nullptr, static_cast<size_t>(w.size(1)),
                         static_cast<size_t>(w.size(0)), activation, precision, variant);
    };
    const auto hiddenLayer = [&](const std::string& name) {
      return dense(model.parameter(name + ".weight"), model.parameter(name + ".bias"), Activation::kRelu, hiddenPrecision, kernel);
    };
    torch::Tensor wAd = w0.slice(1, 2 * d, 3 * d).t().contiguous();
    // In bf16 the per-ad rows are stored in bf16 too: they are the largest read per candidate
    // (a random row of an ads x 256 table), and the sum they enter is rounded to bf16 at the next
    // layer anyway.
    torch::Tensor adProjection = projectRows(adEmbeddings, wAd);
    std::vector<DenseKernel> layers;
    layers.push_back(hiddenLayer("fusion.2"));
    layers.push_back(hiddenLayer("fusion.4"));
    layers.push_back(dense(torch::cat({model.parameter("ctr_head.weight"), model.parameter("cvr_head.weight")}, 0),
                           torch::cat({model.parameter("ctr_head.bias"), model.parameter("cvr_head.bias")}, 0), Activation::kNone));
    precomputed_ = std::make_unique<Precomputed>(Precomputed{
        std::move(wAd), std::move(adProjection), dense(w0.slice(1, 0, 2 * d), model.parameter("fusion.0.bias"), Activation::kNone),
        dense(w0.slice(1, 3 * d), torch::Tensor(), Activation::kRelu), std::move(layers)});
  } else if (mode != "model") {
    throw EngineError(ErrorCode::InvalidArgument, "fusion must be 'precomputed' or 'model'");
  }
}

std::string Fusion::kernel() const { return precomputed_ ? precomputed_->layers.front().variant() : ""; }

torch::Tensor Fusion::projectAds(const torch::Tensor& embeddings) const {
  return precomputed_ ? projectRows(embeddings, precomputed_->wAd) : torch::Tensor();
}

torch::ScalarType Fusion::projectionType() const { return precision_ == "bf16" ? torch::kBFloat16 : torch::kFloat32; }

torch::Tensor Fusion::projectRows(const torch::Tensor& embeddings, const torch::Tensor& wAd) const {
  torch::Tensor projection = emptyTable({embeddings.size(0), wAd.size(1)}, projectionType());
  projection.copy_(embeddings.matmul(wAd));
  return projection;
}

void Fusion::score(const torch::Tensor& user, const torch::Tensor& context, const std::vector<size_t>& live,
                   const std::vector<int64_t>& userRows, const CatalogSnapshot& catalog, const UserStore& users,
                   std::vector<ScoreResult>& results) const {
  if (precomputed_) {
    scorePrecomputed(user, context, live, userRows, catalog, users, results);
  } else {
    scoreWithModel(user, context, live, userRows, catalog, users, results);
  }
}

void Fusion::scoreWithModel(const torch::Tensor& user, const torch::Tensor& context, const std::vector<size_t>& live,
                            const std::vector<int64_t>& userRows, const CatalogSnapshot& catalog, const UserStore& users,
                            std::vector<ScoreResult>& results) const {
  // One request's candidates per pass, the batch's requests spread over the compute threads: each
  // pass's matrix products are too small for OpenBLAS to split well (it runs one thread here).
  std::vector<std::exception_ptr> failures(live.size());
  const int threads = static_cast<int>(std::min<size_t>(live.size(), static_cast<size_t>(computeThreads())));
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1) if (threads > 1)
  for (size_t n = 0; n < live.size(); ++n) {
    // Nothing may leave a parallel region by throwing: failures are rethrown on the calling thread.
    try {
      scoreRequestWithModel(user, context, live[n], userRows, catalog, users, results[live[n]]);
    } catch (...) {
      failures[n] = std::current_exception();
    }
  }
  for (const std::exception_ptr& failure : failures) {
    if (failure) std::rethrow_exception(failure);
  }
}

void Fusion::scoreRequestWithModel(const torch::Tensor& user, const torch::Tensor& context, size_t i, const std::vector<int64_t>& userRows,
                                   const CatalogSnapshot& catalog, const UserStore& users, ScoreResult& result) const {
  c10::InferenceMode inference;  // per thread: this runs on the compute threads
  const auto d = static_cast<int64_t>(dim_);
  const auto width = static_cast<int64_t>(result.adIndex.size());
  const size_t pairWidth = users.pairWidth();
  std::vector<float> pair(result.adIndex.size() * pairWidth);
  for (size_t j = 0; j < result.adIndex.size(); ++j) {
    const auto ad = static_cast<size_t>(result.adIndex[j]);
    users.pairFeatures(userRows[i], catalog.category(ad), catalog.advertiser(ad), pair.data() + j * pairWidth);
  }
  const torch::Tensor ads = torch::empty({1, width, d});
  for (int64_t j = 0; j < width; ++j)
    std::copy_n(catalog.embedding(static_cast<size_t>(result.adIndex[j])), dim_, ads.data_ptr<float>() + j * d);
  torch::Tensor adIds;
  if (model_.scoresIds()) {
    adIds = torch::empty({1, width, 4}, torch::kInt64);
    int64_t* ids = adIds.data_ptr<int64_t>();
    for (int64_t j = 0; j < width; ++j) {
      const auto ad = static_cast<size_t>(result.adIndex[j]);
      ids[j * 4] = static_cast<int64_t>(ad);
      ids[j * 4 + 1] = catalog.campaign(ad);
      ids[j * 4 + 2] = catalog.advertiser(ad);
      ids[j * 4 + 3] = catalog.category(ad);
    }
  }
  const auto row = static_cast<int64_t>(i);
  auto [ctr, cvr] = model_.score(user.slice(0, row, row + 1), context.slice(0, row, row + 1), ads,
                                 floats(pair, {1, width, static_cast<int64_t>(pairWidth)}), adIds);
  ctr = ctr.contiguous();
  cvr = cvr.contiguous();
  result.ctrLogit.assign(ctr.data_ptr<float>(), ctr.data_ptr<float>() + width);
  result.cvrLogit.assign(cvr.data_ptr<float>(), cvr.data_ptr<float>() + width);
}

void Fusion::scorePrecomputed(const torch::Tensor& user, const torch::Tensor& context, const std::vector<size_t>& live,
                              const std::vector<int64_t>& userRows, const CatalogSnapshot& catalog, const UserStore& users,
                              std::vector<ScoreResult>& results) const {
  if (live.empty()) return;
  const Precomputed& f = *precomputed_;
  const size_t requests = live.size();
  const size_t hidden = f.perRequest.outputs();
  const size_t extraWidth = f.perCandidate.inputs();  // the three dots, then the pair features
  const float* userEmbeddings = user.data_ptr<float>();
  const float* contextEmbeddings = context.data_ptr<float>();
  std::vector<float> requestInputs(requests * 2 * dim_);
  std::vector<float> userContext(requests);
  for (size_t r = 0; r < requests; ++r) {
    const float* u = userEmbeddings + live[r] * dim_;
    const float* c = contextEmbeddings + live[r] * dim_;
    std::copy_n(u, dim_, requestInputs.data() + r * 2 * dim_);
    std::copy_n(c, dim_, requestInputs.data() + r * 2 * dim_ + dim_);
    userContext[r] = dot(u, c, dim_);
  }
  std::vector<float> perRequest(requests * hidden);
  f.perRequest.apply(requestInputs.data(), 2 * dim_, requests, perRequest.data(), hidden, false);

  // Row n of the pass is candidate n - firstRow[r] of live request r.
  std::vector<size_t> firstRow(requests + 1, 0);
  for (size_t r = 0; r < requests; ++r) {
    ScoreResult& result = results[live[r]];
    firstRow[r + 1] = firstRow[r] + result.adIndex.size();
    result.ctrLogit.resize(result.adIndex.size());
    result.cvrLogit.resize(result.adIndex.size());
  }
  const size_t rows = firstRow[requests];
  const size_t catalogAds = catalog.catalogAds();
  const AddedAds* added = catalog.added();
  const float* catalogEmbeddings = catalog.catalog().embeddings.data_ptr<float>();
  const bool bf16Projection = projectionType() == torch::kBFloat16;
  const size_t projectionRowBytes = hidden * f.adProjection.element_size();
  const auto* catalogProjection = static_cast<const std::byte*>(f.adProjection.data_ptr());
  const float* addedEmbeddings = added ? added->embeddings.data_ptr<float>() : nullptr;
  const auto* addedProjection = added ? static_cast<const std::byte*>(added->projection.data_ptr()) : nullptr;
  const size_t blocks = (rows + kFusionBlockRows - 1) / kFusionBlockRows;
  const int threads = static_cast<int>(std::min<size_t>(blocks, static_cast<size_t>(computeThreads())));
  // A block's activations and the layers' weights stay in the core's cache; a whole batch's first
  // hidden layer (32 x 300 rows x 256 floats) would not. Each thread's block scratch is sized here,
  // on the calling thread, because nothing inside the parallel region may throw.
  size_t widest = hidden;
  for (const DenseKernel& layer : f.layers) widest = std::max(widest, layer.outputs());
  const size_t blockFloats = kFusionBlockRows * (hidden + extraWidth + 2 * widest);
  thread_local std::vector<float> scratch;
  scratch.resize(static_cast<size_t>(threads) * blockFloats);
  float* const scratchOfThreads = scratch.data();  // `scratch` names another (empty) vector on the workers
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1) if (threads > 1)
  for (size_t block = 0; block < blocks; ++block) {
    const size_t begin = block * kFusionBlockRows;
    const size_t count = std::min(kFusionBlockRows, rows - begin);
    float* const first = scratchOfThreads + static_cast<size_t>(omp_get_thread_num()) * blockFloats;
    float* const extra = first + kFusionBlockRows * hidden;
    float* const activations[2] = {extra + kFusionBlockRows * extraWidth, extra + kFusionBlockRows * (extraWidth + widest)};
    // Each candidate's rows are resolved first, so that the rows a few candidates ahead (their
    // projection is 1 KB at a random place in an ads x 256 table) are fetched during this one.
    size_t slot[kFusionBlockRows];
    size_t adOf[kFusionBlockRows];
    const float* embedding[kFusionBlockRows];
    const std::byte* projection[kFusionBlockRows];
    size_t r = static_cast<size_t>(std::upper_bound(firstRow.begin(), firstRow.end(), begin) - firstRow.begin()) - 1;
    for (size_t n = 0; n < count; ++n) {
      while (begin + n >= firstRow[r + 1]) ++r;
      const auto ad = static_cast<size_t>(results[live[r]].adIndex[begin + n - firstRow[r]]);
      const bool isAdded = ad >= catalogAds;
      slot[n] = r;
      adOf[n] = ad;
      embedding[n] = isAdded ? addedEmbeddings + (ad - catalogAds) * dim_ : catalogEmbeddings + ad * dim_;
      projection[n] = isAdded ? addedProjection + (ad - catalogAds) * projectionRowBytes : catalogProjection + ad * projectionRowBytes;
    }
    // Without it the gather took about as long as the layers (20K ads, 300 candidates: 240 vs 135 us).
    constexpr size_t kAhead = 4;
    const auto prefetch = [&](size_t n) {
      prefetchRow(projection[n], projectionRowBytes);
      prefetchRow(embedding[n], dim_ * sizeof(float));
    };
    // One line of every row first: in a large catalog each row sits on a page of its own, and their
    // page walks overlap when issued in one run (1.05M ads: score stage about 460 -> 350 µs per
    // request, alternating builds, engine only); the rest of each row follows a few candidates ahead.
    for (size_t n = 0; n < count; ++n) {
      prefetchLine(projection[n]);
      prefetchLine(embedding[n]);
      catalog.prefetchAttributes(adOf[n]);
    }
    for (size_t n = 0; n < std::min(kAhead, count); ++n) prefetch(n);
    for (size_t n = 0; n < count; ++n) {
      if (n + kAhead < count) prefetch(n + kAhead);
      const size_t request = live[slot[n]];
      const float* requestTerm = perRequest.data() + slot[n] * hidden;
      addProjection(projection[n], bf16Projection, requestTerm, hidden, first + n * hidden);
      float* extraRow = extra + n * extraWidth;
      extraRow[0] = dot(userEmbeddings + request * dim_, embedding[n], dim_);
      extraRow[1] = userContext[slot[n]];
      extraRow[2] = dot(contextEmbeddings + request * dim_, embedding[n], dim_);
      users.pairFeatures(userRows[request], catalog.category(adOf[n]), catalog.advertiser(adOf[n]), extraRow + 3);
    }
    f.perCandidate.apply(extra, extraWidth, count, first, hidden, true);
    const float* in = first;
    size_t inWidth = hidden;
    for (size_t l = 0; l < f.layers.size(); ++l) {
      float* const out = activations[l % 2];
      f.layers[l].apply(in, inWidth, count, out, f.layers[l].outputs(), false);
      in = out;
      inWidth = f.layers[l].outputs();
    }
    for (size_t n = 0; n < count; ++n) {
      ScoreResult& result = results[live[slot[n]]];
      result.ctrLogit[begin + n - firstRow[slot[n]]] = in[n * 2];
      result.cvrLogit[begin + n - firstRow[slot[n]]] = in[n * 2 + 1];
    }
  }
}

}  // namespace adserve
