#include "core/storage.h"

#include "core/backend.h"

namespace t6 {

Storage::Storage(Device device, size_t bytes) : device_(device), bytes_(bytes) {
  data_ = backend(device).allocate(bytes);
}

Storage::~Storage() { backend(device_).deallocate(data_, bytes_); }

}  // namespace t6
