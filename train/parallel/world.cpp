#include "train/parallel/world.h"

#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <iostream>

#include "core/backend.h"
#include "core/cpu/threads.h"

#ifdef T6_MPI
#include "train/parallel/mpi_communicator.h"
#endif

namespace t6 {

bool launched_by_mpirun() {
  // Open MPI's mpirun sets OMPI_COMM_WORLD_SIZE; PMIx and PMI launchers (srun, hydra) set the others.
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE"})
    if (std::getenv(name) != nullptr) return true;
  return false;
}

std::string rank_label() {
  const char* rank = std::getenv("OMPI_COMM_WORLD_RANK");
  const char* size = std::getenv("OMPI_COMM_WORLD_SIZE");
  if (rank != nullptr && size != nullptr) return cat(" (rank ", rank, " of ", size, ")");
  if (const char* pmix_rank = std::getenv("PMIX_RANK")) return cat(" (rank ", pmix_rank, ")");
  return "";
}

World& World::get() {
  // Never destroyed before main returns: MPI_Finalize runs from the static destructor, after every
  // collective of the program.
  static World world;
  return world;
}

#ifdef T6_MPI

World::World() : launched_(launched_by_mpirun()) {
  if (!launched_) return;
  int provided = 0;
  // Only the main thread calls MPI; the OpenMP threads of the CPU kernels never do.
  MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
  MPI_Comm local;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &local);
  MPI_Comm_rank(local, &local_rank_);
  MPI_Comm_size(local, &local_size_);
  MPI_Comm_free(&local);
  host_ = std::make_unique<MpiCommunicator>(MPI_COMM_WORLD);
}

World::~World() {
  if (!launched_) return;
  cuda_.reset();  // the device communicator first: NCCL's teardown may still talk to the other ranks
  host_.reset();
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

void end_all_ranks(int status) {
  std::cerr << std::flush;
  int started = 0, finalized = 0;
  MPI_Initialized(&started);
  MPI_Finalized(&finalized);
  if (started && !finalized) MPI_Abort(MPI_COMM_WORLD, status);
  std::_Exit(status);
}

#else  // built without MPI: one process, and a clear error when mpirun starts several

World::World() {
  const char* size = std::getenv("OMPI_COMM_WORLD_SIZE");
  T6_CHECK(size == nullptr || std::string(size) == "1", "this t6 was built without MPI, so it cannot run as one of ",
           size, " ranks; install Open MPI (libopenmpi-dev openmpi-bin) and rebuild, or run it without mpirun");
}

World::~World() = default;

void end_all_ranks(int status) {
  std::cerr << std::flush;
  std::_Exit(status);
}

#endif

Communicator& World::communicator(Device device) {
  T6_CHECK(host_ != nullptr, "no communicator: this process was not launched by mpirun");
  if (device == Device::CPU) return *host_;
  if (!cuda_) {
    const CommunicatorFactory factory = communicator_factory(device);
    T6_CHECK(factory != nullptr, "this t6 was built without NCCL, so it cannot train on ", device_name(device),
             " as several ranks; install NCCL with the CUDA toolkit and rebuild, or train with one process");
    cuda_ = factory(*host_);
  }
  return *cuda_;
}

Communicator* join_training_group(Device device, int64_t threads) {
  World& world = World::get();
  if (!world.launched_by_mpi()) return nullptr;
  set_device_ordinal(device, world.local_rank());
  if (device == Device::CPU && threads == 0 && !std::getenv("T6_NUM_THREADS") && !std::getenv("OMP_NUM_THREADS")) {
    // A rank that mpirun bound to some cores (its default: one core per rank for up to 2 ranks) uses
    // those; an unbound rank (--bind-to none) takes its share of the host's.
    const int usable = omp_get_num_procs(), host = static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));
    set_cpu_threads(usable < host ? usable : std::max(1, host / world.local_size()));
  }
  return &world.communicator(device);
}

}  // namespace t6
