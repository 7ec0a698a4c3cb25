#pragma once

#include <chrono>
#include <cstdint>
#include <vector>

namespace adserve {

using Clock = std::chrono::steady_clock;

// The stages scoreBatch times, in the order engineStages (src/engine/addon.ts) names them.
enum Stage : size_t { kParse, kUser, kContext, kRetrieve, kLightScore, kScore, kStageCount };
inline constexpr const char* kStageNames[kStageCount] = {"parse", "user", "context", "retrieve", "light_score", "score"};

// One request as the batcher hands it to Engine::scoreBatch.
struct ScoreRequest {
  std::vector<uint8_t> bytes;  // a verified AdRequest
  // Campaign codes (AdKeys::campaign) kept out of this request on top of its own block lists.
  std::vector<uint32_t> excludedCampaigns;
  // False when the control plane's privacy policy (src/pipeline/privacy.ts) forbids personalising this
  // request: it is then scored as an anonymous user (see forgetUser) with no audience targeting.
  bool personalised = true;
  Clock::time_point deadline;
  Clock::time_point enqueued;
};

// One request's answer: candidates ordered by lightweight score; logits are NaN when degraded.
// The retriever fills adIndex and light, the fusion stage the logits.
struct ScoreResult {
  std::vector<int32_t> adIndex;
  std::vector<float> light;
  std::vector<float> ctrLogit;
  std::vector<float> cvrLogit;
  std::vector<double> stageNs = std::vector<double>(kStageCount, 0.0);
  uint32_t batchSize = 0;
  double queueWaitNs = 0;
  bool degraded = false;
};

}  // namespace adserve
