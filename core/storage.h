// A block of device memory shared by every tensor that views it. The version counter is bumped by
// every in-place write, so autograd can tell when a tensor it saved for backward was overwritten.
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/device.h"

namespace t6 {

class Storage {
 public:
  Storage(Device device, size_t bytes);  // memory comes from the device's backend allocator
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  Device device() const { return device_; }
  uint64_t version() const { return version_; }
  void bump_version() { ++version_; }

 private:
  Device device_;
  size_t bytes_;
  void* data_ = nullptr;
  uint64_t version_ = 0;
};

}  // namespace t6
