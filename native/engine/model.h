#pragma once

#include <torch/script.h>

#include <string>
#include <tuple>

namespace adserve {

// One TorchScript model directory's model.pt and its exported methods (manifest "methods").
// Loaded once, immutable afterwards; every call runs under InferenceMode, from any thread.
class Model {
 public:
  explicit Model(const std::string& path);

  torch::Tensor userEmbed(const torch::Tensor& categorical, const torch::Tensor& numeric) const;
  torch::Tensor contextEmbedSearch(const torch::Tensor& tokens, const torch::Tensor& categorical, const torch::Tensor& numeric) const;
  torch::Tensor contextEmbedBrowse(const torch::Tensor& category, const torch::Tensor& product, const torch::Tensor& categorical,
                                   const torch::Tensor& numeric) const;
  // categorical [N,4], title [N,T], numeric [N,F] -> [N,D]
  torch::Tensor adEmbed(const torch::Tensor& categorical, const torch::Tensor& title, const torch::Tensor& numeric) const;
  // user [B,D], context [B,D], ads [B,N,D], pair [B,N,P] -> (ctr_logit [B,N], cvr_logit [B,N]). A
  // scorer that memorises ids (the DLRM) also takes adIds [B,N,4] int64: ad index, campaign code,
  // advertiser, category (all 0-based); the others take no adIds.
  std::tuple<torch::Tensor, torch::Tensor> score(const torch::Tensor& user, const torch::Tensor& context, const torch::Tensor& ads,
                                                 const torch::Tensor& pair, const torch::Tensor& adIds = {}) const;
  // True when score takes adIds (its TorchScript schema has the fifth input).
  bool scoresIds() const { return scoresIds_; }
  // A trained parameter by its dotted name (e.g. "fusion.0.weight"); throws E_MODEL when absent.
  torch::Tensor parameter(const std::string& name) const;

 private:
  torch::Tensor call(const char* method, std::vector<torch::jit::IValue> inputs) const;
  // One call per row of the inputs (their first dimension), the outputs stacked.
  torch::Tensor callRowByRow(const char* method, const std::vector<torch::Tensor>& inputs) const;

  // TorchScript's Module::get_method is not const, but running a method does not mutate the module.
  mutable torch::jit::script::Module module_;
  bool scoresIds_ = false;
};

}  // namespace adserve
