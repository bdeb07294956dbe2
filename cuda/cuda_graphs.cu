// CUDA graphs for the backend (core/backend.h, "graphs"): stream capture of the kernels one decode step
// queues, then one cudaGraphLaunch per step instead of ~400 kernel launches.
//
// Capture runs in relaxed mode, so the caching allocator may still cudaMalloc a block it lacks (a
// capture forbids only work that would synchronize). Every block handed out while capturing belongs to
// the graph's allocator pool (caching_allocator.h) until release_graph().
#include "cuda/cuda_backend.h"
#include "cuda/cuda_check.h"

namespace t6 {

void CudaBackend::forbid_while_capturing(const char* what) const {
  T6_CHECK(capturing_ == 0, "cuda: ", what, " while capturing a graph; a captured step must read its inputs from ",
           "device buffers written before the replay");
}

void CudaBackend::begin_graph_capture() {
  forbid_while_capturing("begin_graph_capture");
  timer_.set_paused(true);  // timing events cannot be waited for inside a capture
  const int64_t id = next_graph_++;
  allocator_.open_pool(id);
  const cudaError_t status = cudaStreamBeginCapture(stream_, cudaStreamCaptureModeRelaxed);
  if (status != cudaSuccess) allocator_.close_pool(), timer_.set_paused(false);
  T6_CUDA_CHECK(status);
  capturing_ = id;
}

int64_t CudaBackend::end_graph_capture() {
  T6_CHECK(capturing_ != 0, "cuda end_graph_capture: no capture is running");
  const int64_t id = capturing_;
  capturing_ = 0;
  allocator_.close_pool();
  timer_.set_paused(false);
  Graph g;
  // A failed capture (an operation a capture forbids) reports here; its pool is released at once.
  const cudaError_t ended = cudaStreamEndCapture(stream_, &g.graph);
  if (ended != cudaSuccess) allocator_.release_pool(id);
  T6_CUDA_CHECK(ended);
  const cudaError_t instantiated = cudaGraphInstantiate(&g.exec, g.graph, 0);
  if (instantiated != cudaSuccess) {
    cudaGraphDestroy(g.graph);
    allocator_.release_pool(id);
  }
  T6_CUDA_CHECK(instantiated);
  graphs_[id] = g;
  return id;
}

void CudaBackend::replay_graph(int64_t graph) {
  forbid_while_capturing("replay_graph");
  const auto found = graphs_.find(graph);
  T6_CHECK(found != graphs_.end(), "cuda replay_graph: no graph ", graph, " (released, or never captured)");
  T6_CUDA_CHECK(cudaGraphLaunch(found->second.exec, stream_));
}

int64_t CudaBackend::graph_operations(int64_t graph) const {
  const auto found = graphs_.find(graph);
  T6_CHECK(found != graphs_.end(), "cuda graph_operations: no graph ", graph, " (released, or never captured)");
  size_t nodes = 0;
  T6_CUDA_CHECK(cudaGraphGetNodes(found->second.graph, nullptr, &nodes));
  return static_cast<int64_t>(nodes);
}

void CudaBackend::release_graph(int64_t graph) {
  const auto found = graphs_.find(graph);
  if (found == graphs_.end()) return;
  // The replays queued so far still use the graph's memory; its blocks return to the shared cache,
  // whose next users queue after them on the same stream.
  T6_CUDA_CHECK(cudaGraphExecDestroy(found->second.exec));
  T6_CUDA_CHECK(cudaGraphDestroy(found->second.graph));
  graphs_.erase(found);
  allocator_.release_pool(graph);
}

}  // namespace t6
