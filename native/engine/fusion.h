#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "engine/catalog.h"
#include "engine/dense_kernel.h"
#include "engine/model.h"
#include "engine/scoring.h"
#include "engine/user_store.h"

namespace adserve {

// The fusion stage: CTR and CVR logits for every shortlisted candidate of a batch.
//
// "precomputed": the fusion's first layer is linear over [E_user, E_ctx, E_ad, dots, pair], so
// W_ad · E_ad is computed once per ad (projectAds) and W_user · E_user + W_ctx · E_ctx once per
// request; per candidate only an add, the dots, the pair term and the remaining layers run, on
// DenseKernel, over all the batch's (request, candidate) rows in one pass.
// "model": the TorchScript score method, one request per pass: a pass of several requests lets
// BLAS round a request's scores differently depending on its neighbours (the shape picks its
// blocking). The only mode for a scorer that takes ad ids (the DLRM): it has no first layer to split.
// "precomputed" runs the hidden layers after the first (the bulk of its FLOPs) in `precision`:
// "fp32", "bf16" (DenseKernel::Precision::kBf16), or "auto" (bf16 where the CPU has AVX512_BF16,
// fp32 elsewhere); in bf16 the cached per-ad rows W_ad · E_ad are stored in bf16 as well, the rest
// of the first layer and the heads stay fp32. Either way a request's logits do not depend on the rest of its batch.
// Immutable after open; the batcher thread calls score(), a worker thread projectAds().
class Fusion {
 public:
  // `model` must outlive the stage; adEmbeddings are the catalog's loaded ads [ads, D]. `kernel`
  // names the hidden layers' DenseKernel variant, empty for the machine's best (tests pin one).
  Fusion(const Model& model, const torch::Tensor& adEmbeddings, size_t pairWidth, const std::string& mode,
         const std::string& precision = "fp32", const std::string& kernel = "");

  // The hidden layers' DenseKernel variant, empty when the mode is "model".
  std::string kernel() const;
  // The hidden layers' precision ("fp32" or "bf16", "auto" resolved), empty when the mode is "model".
  const std::string& precision() const { return precision_; }

  // The per-ad rows the stage keeps for ads (embeddings [n, D]) added at run time; undefined when
  // it keeps none ("model").
  torch::Tensor projectAds(const torch::Tensor& embeddings) const;
  // Fills results[i].ctrLogit and .cvrLogit for each request i in `live`, whose candidates are
  // results[i].adIndex; user and context are the batch's embeddings [requests, D], userRows each
  // request's UserStore row.
  void score(const torch::Tensor& user, const torch::Tensor& context, const std::vector<size_t>& live, const std::vector<int64_t>& userRows,
             const CatalogSnapshot& catalog, const UserStore& users, std::vector<ScoreResult>& results) const;

 private:
  void scoreWithModel(const torch::Tensor& user, const torch::Tensor& context, const std::vector<size_t>& live,
                      const std::vector<int64_t>& userRows, const CatalogSnapshot& catalog, const UserStore& users,
                      std::vector<ScoreResult>& results) const;
  // One live request i's candidates in one pass of the model's score method.
  void scoreRequestWithModel(const torch::Tensor& user, const torch::Tensor& context, size_t i, const std::vector<int64_t>& userRows,
                             const CatalogSnapshot& catalog, const UserStore& users, ScoreResult& result) const;
  void scorePrecomputed(const torch::Tensor& user, const torch::Tensor& context, const std::vector<size_t>& live,
                        const std::vector<int64_t>& userRows, const CatalogSnapshot& catalog, const UserStore& users,
                        std::vector<ScoreResult>& results) const;

  // The per-ad rows' type: bf16 when the hidden layers are, else fp32.
  torch::ScalarType projectionType() const;
  // W_ad · E_ad of each of `embeddings`' rows, in projectionType(), on a table (emptyTable).
  torch::Tensor projectRows(const torch::Tensor& embeddings, const torch::Tensor& wAd) const;

  // The fusion MLP with its first layer split by input: per ad, per request and per candidate.
  // Every layer after the per-ad projection runs on DenseKernel, whose rows do not depend on each
  // other, so a whole batch's rows can share one pass.
  struct Precomputed {
    torch::Tensor wAd;                // [D, H]
    torch::Tensor adProjection;       // [ads, H]: W_ad · E_ad, in projectionType()
    DenseKernel perRequest;           // [E_user, E_ctx] -> W_user · E_user + W_ctx · E_ctx + b0
    DenseKernel perCandidate;         // [dots, pair], added onto the two above, then ReLU
    std::vector<DenseKernel> layers;  // the remaining hidden layers, then both heads (ctr, cvr)
  };

  const Model& model_;
  size_t dim_;
  std::unique_ptr<Precomputed> precomputed_;  // null when the mode is "model"
  std::string precision_;
};

}  // namespace adserve
