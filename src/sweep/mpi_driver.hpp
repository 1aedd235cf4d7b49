// Sweeps across processes with MPI. Built with MPI (CMake option XPUPLAN_MPI) and started by
// mpirun with K ranks, the pending scenarios are dealt round-robin (position i to rank i mod K);
// every rank searches its share on its threads and sends each finished scenario, as the text of
// record_to_text, to rank 0, which alone writes the database. Without MPI, or when not started
// by mpirun, the "cluster" is this one process and every call here is local.
//
// MPI is initialised only by cluster_start (the sweep command), so other commands never need
// mpirun. Only the calling thread of these functions makes MPI calls (MPI_THREAD_FUNNELED).
#pragma once

#include <string>
#include <vector>

#include "sweep/driver.hpp"

namespace xpu::sweep {

struct Cluster {
  int rank = 0, size = 1;
  bool mpi = false;  // MPI was initialised
};

bool built_with_mpi();

// Initialises MPI when built with it and launched by mpirun (OMPI_COMM_WORLD_SIZE, PMIX_RANK or
// PMI_SIZE in the environment); otherwise returns a cluster of one. Built without MPI but
// launched as several processes: InputError (each would run the whole sweep).
Cluster cluster_start();
// MPI_Finalize (when initialised).
void cluster_stop(Cluster& c);
// MPI_Abort on every rank (when initialised and more than one rank); otherwise returns.
void cluster_abort(const Cluster& c, int code);

// Every rank's `ok`, in rank order (a collective: every rank must call it).
std::vector<bool> cluster_all_ok(const Cluster& c, bool ok);
// Rank 0's vector on every rank (a collective).
std::vector<long> cluster_broadcast(const Cluster& c, const std::vector<long>& v);

// Runs this rank's share. Rank 0: done() receives the records of every rank, on the calling
// thread; returns when every rank has finished. Other ranks: records go to rank 0, then a
// "finished" message. An exception on another rank reaches rank 0 as std::runtime_error.
void run_cluster(const Cluster& c, const std::vector<Scenario>& mine, int threads, const Work& work, const Done& done);

}  // namespace xpu::sweep
