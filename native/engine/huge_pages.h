#pragma once

#include <torch/torch.h>

namespace adserve {

// An uninitialised contiguous tensor for a table read one row at a time at random places (ad
// embeddings, the fusion's per-ad rows). From 2 MiB up it is mapped on its own, 2 MiB aligned,
// and asks the kernel for transparent huge pages (MADV_HUGEPAGE; the "madvise" THP mode grants
// them only so): at a million ads such a table spans hundreds of MB, and with 4 KiB pages nearly
// every row read also missed the TLB. Where the kernel refuses, the table keeps normal pages.
torch::Tensor emptyOnHugePages(at::IntArrayRef shape, torch::ScalarType dtype);

}  // namespace adserve
