#include "sweep/mpi_driver.hpp"

#include <cstdlib>
#include <stdexcept>

#include "spec/error.hpp"

#ifdef XPUPLAN_WITH_MPI
#include <mpi.h>
#endif

namespace xpu::sweep {

#ifndef XPUPLAN_WITH_MPI

bool built_with_mpi() { return false; }
Cluster cluster_start() {
  // K copies of a build without MPI would each run the whole sweep into the same database.
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"})
    if (const char* n = std::getenv(v); n && std::atoi(n) > 1)
      throw InputError("mpirun", std::string("this xpuplan was built without MPI (CMake option XPUPLAN_MPI=OFF) but started "
                                             "as ") + n + " processes; run it without mpirun, or rebuild it with MPI");
  return {};
}
void cluster_stop(Cluster&) {}
void cluster_abort(const Cluster&, int) {}
std::vector<bool> cluster_all_ok(const Cluster&, bool ok) { return {ok}; }
std::vector<long> cluster_broadcast(const Cluster&, const std::vector<long>& v) { return v; }
void run_cluster(const Cluster&, const std::vector<Scenario>& mine, int threads, const Work& work, const Done& done) {
  run_pool(mine, threads, work, done);
}

#else

namespace {

enum Tag : int { kRecord = 1, kFinished = 2, kFailed = 3 };

bool launched_by_mpirun() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE", "PMI_RANK"})
    if (std::getenv(v)) return true;
  return false;
}

void send_text(const std::string& s, int tag) {
  MPI_Send(s.data(), static_cast<int>(s.size()), MPI_CHAR, 0, tag, MPI_COMM_WORLD);
}

}  // namespace

bool built_with_mpi() { return true; }

Cluster cluster_start() {
  Cluster c;
  if (!launched_by_mpirun()) return c;
  int provided = 0;
  if (MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
    throw std::runtime_error("MPI_Init_thread failed");
  c.mpi = true;
  MPI_Comm_rank(MPI_COMM_WORLD, &c.rank);
  MPI_Comm_size(MPI_COMM_WORLD, &c.size);
  return c;
}

void cluster_stop(Cluster& c) {
  if (!c.mpi) return;
  c.mpi = false;
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

void cluster_abort(const Cluster& c, int code) {
  if (c.mpi && c.size > 1) MPI_Abort(MPI_COMM_WORLD, code);
}

std::vector<bool> cluster_all_ok(const Cluster& c, bool ok) {
  if (!c.mpi) return {ok};
  int mine = ok ? 1 : 0;
  std::vector<int> all(static_cast<size_t>(c.size));
  MPI_Allgather(&mine, 1, MPI_INT, all.data(), 1, MPI_INT, MPI_COMM_WORLD);
  return std::vector<bool>(all.begin(), all.end());
}

std::vector<long> cluster_broadcast(const Cluster& c, const std::vector<long>& v) {
  if (!c.mpi) return v;
  long n = static_cast<long>(v.size());
  MPI_Bcast(&n, 1, MPI_LONG, 0, MPI_COMM_WORLD);
  std::vector<long> out = c.rank == 0 ? v : std::vector<long>(static_cast<size_t>(n));
  if (n > 0) MPI_Bcast(out.data(), static_cast<int>(n), MPI_LONG, 0, MPI_COMM_WORLD);
  return out;
}

void run_cluster(const Cluster& c, const std::vector<Scenario>& mine, int threads, const Work& work, const Done& done) {
  if (!c.mpi || c.size == 1) return run_pool(mine, threads, work, done);

  if (c.rank != 0) {
    try {
      run_pool(mine, threads, work, [](ScenarioRecord&& r) { send_text(record_to_text(r), kRecord); });
    } catch (const std::exception& e) {
      send_text(e.what(), kFailed);
      throw;
    }
    send_text("", kFinished);
    return;
  }

  int finished = 0;
  std::string buf;
  auto poll = [&]() -> bool {
    for (;;) {
      int flag = 0;
      MPI_Status st;
      MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, &st);
      if (!flag) break;
      int n = 0;
      MPI_Get_count(&st, MPI_CHAR, &n);
      buf.assign(static_cast<size_t>(n), '\0');
      MPI_Recv(buf.data(), n, MPI_CHAR, st.MPI_SOURCE, st.MPI_TAG, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
      if (st.MPI_TAG == kRecord) done(record_from_text(buf));
      else if (st.MPI_TAG == kFinished) ++finished;
      else throw std::runtime_error("rank " + std::to_string(st.MPI_SOURCE) + ": " + buf);
    }
    return finished < c.size - 1;
  };
  run_pool(mine, threads, work, done, poll);
}

#endif

}  // namespace xpu::sweep
