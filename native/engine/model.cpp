#include "engine/model.h"

#include <ATen/Parallel.h>
#include <omp.h>
#include <torch/csrc/jit/runtime/graph_executor.h>

#include "engine/errors.h"

namespace adserve {

Model::Model(const std::string& path) {
  // The optimising executor re-profiles a method for every new input shape, and batch sizes and
  // candidate counts change from batch to batch: each unseen shape cost tens of milliseconds on the
  // ad path. These small graphs run as fast interpreted, without the spikes (bench/ measures both).
  torch::jit::setGraphExecutorOptimize(false);
  module_ = torch::jit::load(path);
  module_.eval();
  for (const char* method : {"user_embed", "context_embed_search", "context_embed_browse", "ad_embed", "score"}) {
    if (!module_.find_method(method)) throw EngineError(ErrorCode::Model, path + " has no method " + method);
  }
  // The schema counts `self`: five arguments for the towers' scorer, six for one that takes ad ids.
  const size_t scoreArguments = module_.get_method("score").function().getSchema().arguments().size();
  if (scoreArguments != 5 && scoreArguments != 6)
    throw EngineError(ErrorCode::Model, path + ": score takes " + std::to_string(scoreArguments - 1) + " inputs, not 4 or 5");
  scoresIds_ = scoreArguments == 6;
}

namespace {

// The towers run on a batch's distinct users and contexts, tens of rows, where splitting each
// operator across threads costs more than it saves: the demo's search tower over 16 queries takes
// 0.74 ms on one thread and 4.8 ms (9.5 ms of CPU) on two. at::parallel_for reads the calling
// thread's own OpenMP count, so this leaves every other thread's as it was.
class OneIntraOpThread {
 public:
  // at::get_num_threads first initialises this thread's count from the global one, which would
  // otherwise overwrite the 1 on the thread's first operator.
  OneIntraOpThread() : previous_(at::get_num_threads()) { omp_set_num_threads(1); }
  ~OneIntraOpThread() { omp_set_num_threads(previous_); }
  OneIntraOpThread(const OneIntraOpThread&) = delete;
  OneIntraOpThread& operator=(const OneIntraOpThread&) = delete;

 private:
  const int previous_;
};

}  // namespace

torch::Tensor Model::call(const char* method, std::vector<torch::jit::IValue> inputs) const {
  c10::InferenceMode inference;
  const OneIntraOpThread oneThread;
  return module_.get_method(method)(std::move(inputs)).toTensor();
}

// A row's output through libtorch depends on the batch it is in: its matrix products block by the
// batch's size, and rows at a block's edge round differently (AVX2 OpenBLAS: the last bits of a
// request's embedding moved between a tower batch of 8 and one of 16). The per-request towers
// therefore run one row at a time, so that a request's embedding, and its scores, are the same
// whatever else missed the caches with it. A row alone costs more than its share of a batch: with
// every context new (engine bench, ivf default, batches of 8, two rounds alternating the builds on
// an AVX2 EPYC), the context stage went from 606 / 539 to 713 / 630 µs per request and the engine's
// CPU from 2,246 / 2,137 to 2,448 / 2,268; in serving most contexts come from the cache.
torch::Tensor Model::callRowByRow(const char* method, const std::vector<torch::Tensor>& inputs) const {
  const int64_t rows = inputs.front().size(0);
  std::vector<torch::Tensor> outputs;
  outputs.reserve(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) {
    std::vector<torch::jit::IValue> row;
    row.reserve(inputs.size());
    for (const torch::Tensor& input : inputs) row.emplace_back(input.narrow(0, r, 1));
    outputs.push_back(call(method, std::move(row)));
  }
  return torch::cat(outputs, 0);
}

torch::Tensor Model::userEmbed(const torch::Tensor& categorical, const torch::Tensor& numeric) const {
  return callRowByRow("user_embed", {categorical, numeric});
}

torch::Tensor Model::contextEmbedSearch(const torch::Tensor& tokens, const torch::Tensor& categorical, const torch::Tensor& numeric) const {
  return callRowByRow("context_embed_search", {tokens, categorical, numeric});
}

torch::Tensor Model::contextEmbedBrowse(const torch::Tensor& category, const torch::Tensor& product, const torch::Tensor& categorical,
                                        const torch::Tensor& numeric) const {
  return callRowByRow("context_embed_browse", {category, product, categorical, numeric});
}

torch::Tensor Model::adEmbed(const torch::Tensor& categorical, const torch::Tensor& title, const torch::Tensor& numeric) const {
  return call("ad_embed", {categorical, title, numeric});
}

std::tuple<torch::Tensor, torch::Tensor> Model::score(const torch::Tensor& user, const torch::Tensor& context, const torch::Tensor& ads,
                                                      const torch::Tensor& pair, const torch::Tensor& adIds) const {
  if (scoresIds_ != adIds.defined()) throw EngineError(ErrorCode::Model, scoresIds_ ? "score needs ad ids" : "score takes no ad ids");
  c10::InferenceMode inference;
  std::vector<torch::jit::IValue> inputs{user, context, ads, pair};
  if (scoresIds_) inputs.emplace_back(adIds);
  auto output = module_.get_method("score")(std::move(inputs)).toTuple();
  return {output->elements()[0].toTensor(), output->elements()[1].toTensor()};
}

}  // namespace adserve

namespace adserve {

torch::Tensor Model::parameter(const std::string& name) const {
  for (const auto& named : module_.named_parameters()) {
    if (named.name == name) return named.value.detach();
  }
  throw EngineError(ErrorCode::Model, "model has no parameter " + name);
}

}  // namespace adserve
