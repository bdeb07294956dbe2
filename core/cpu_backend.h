// The CPU backend object (core/cpu_backend.cpp), which core/backend.cpp hands out as
// backend(Device::CPU). Everything else reaches it through backend.h.
#pragma once
#include "core/backend.h"

namespace t6 {

Backend& cpu_backend();

}  // namespace t6
