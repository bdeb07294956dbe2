// The processes of a run. Launched by mpirun (`mpirun -np N build/t6 train ...`), t6 starts MPI and
// this process is one rank of N; launched directly it is the only one, MPI is never started, and
// t6 runs exactly as a single process always has.
//
// A failure on one rank must stop them all, never leave the others waiting in a collective: main()
// prints the error with the rank (rank_label) and calls end_all_ranks (MPI_Abort). A rank that dies
// (killed, crashed) is noticed by mpirun, which ends the others.
#pragma once
#include <memory>
#include <string>

#include "core/communicator.h"

namespace t6 {

class World {
 public:
  // The world of this process, started on first use (MPI_Init when launched by mpirun).
  static World& get();
  ~World();  // MPI_Finalize, when it was started

  bool launched_by_mpi() const { return launched_; }
  int rank() const { return rank_; }
  int size() const { return size_; }
  int local_rank() const { return local_rank_; }  // among the ranks on this host
  int local_size() const { return local_size_; }

  // The communicator for tensors on `device`: MPI for the CPU; for CUDA the registered device
  // communicator (NCCL), set up on first use. Throws when the device has none or MPI is not started.
  Communicator& communicator(Device device);

 private:
  World();
  bool launched_ = false;
  int rank_ = 0, size_ = 1, local_rank_ = 0, local_size_ = 1;
  std::unique_ptr<Communicator> host_, cuda_;
};

// True when the environment says mpirun started this process (checked without starting MPI).
bool launched_by_mpirun();
// " (rank r of N)" under mpirun, for error messages; "" otherwise. Never throws.
std::string rank_label();
// Ends this process and every other rank with `status` (MPI_Abort once MPI is started; else exit).
[[noreturn]] void end_all_ranks(int status);

// For a command that trains (`t6 train`, `t6 bench train`): null when not launched by mpirun; else
// this rank's group, after choosing its GPU by local rank (CUDA) or giving it its share of the host's
// cores (the CPU: the cores mpirun bound it to, or when unbound cores / local ranks; unless
// train.threads, T6_NUM_THREADS or OMP_NUM_THREADS says).
Communicator* join_training_group(Device device, int64_t threads);

}  // namespace t6
