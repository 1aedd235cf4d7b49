// Fitting a chip's kernel parameters to a kernels table (validation/README.md): the values of the
// roofline in perf/kernels.hpp that best explain single kernels timed on that chip. A report, not
// a file writer: the large-GEMM caps in data/calibration are fitted to whole training steps
// (`calibrate --truth training-*.csv`), which carry framework costs a lone kernel does not pay;
// the shape fields a kernel fit measures (gemm.half_dim, memory.stream_fraction) go into
// data/calibration by hand, with their source.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "load/catalog.hpp"
#include "load/csv.hpp"

namespace xpu {

struct KernelFit {
  std::string chip;
  int gemm_rows = 0, attention_rows = 0, stream_rows = 0;
  // GEMM roofline: cap per precision, one half size for every dimension, memory fraction, overhead.
  std::map<std::string, double> cap;  // by precision name
  double half_dim = 0, memory_fraction = 0, kernel_overhead_s = 0;
  double gemm_mape_shipped = 0, gemm_mape_fitted = 0;
  // Weight streaming: the best read rate of a GEMV (m <= 16) over at least 128 MiB of weights,
  // as a share of the chip's HBM bandwidth (0 = no such rows).
  double stream_fraction = 0;
  // Flash attention forward + backward: efficiency and keys-per-query half size.
  double attention = 0, attention_half_keys = 0;
  // Backward's efficiency relative to the forward's, from rows timed both ways (pairs: how many).
  double attention_backward = 1;
  int attention_pairs = 0;
  double attention_mape_shipped = 0, attention_mape_fitted = 0;
};

// Grades A and B only. Throws InputError for a malformed table; chips not in the catalog are skipped.
std::vector<KernelFit> fit_kernels(const CsvTable& t, const Catalog& c);

// The report `calibrate --truth kernels-*.csv` prints: per chip, each parameter shipped in
// data/calibration beside its best fit to the kernels of `path`, with the rows behind it.
std::string kernel_fit_text(const std::string& path, const std::vector<KernelFit>& fits, const Catalog& c);

}  // namespace xpu
