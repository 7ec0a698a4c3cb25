#pragma once

#include <torch/torch.h>

namespace adserve {

// Whether emptyTable maps tables on transparent huge pages; off by default, set once by the
// addon's configure() before any engine opens.
void setHugePageTables(bool enabled);

// An uninitialised contiguous tensor for a table read one row at a time at random places (ad
// embeddings, the fusion's per-ad rows). With huge-page tables on, from 2 MiB up it is mapped on
// its own, 2 MiB aligned, and asks the kernel for transparent huge pages (MADV_HUGEPAGE; the
// "madvise" THP mode grants them only so): at a million ads such a table spans hundreds of MB, and
// with 4 KiB pages nearly every row read also missed the TLB. Where the kernel refuses, the table
// keeps normal pages. The price is at start: the kernel may compact memory to find each 2 MiB page
// (on our VMs 1 GiB took 8-10 s to fault in, against 0.5 s with normal pages).
torch::Tensor emptyTable(at::IntArrayRef shape, torch::ScalarType dtype);

}  // namespace adserve
