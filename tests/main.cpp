// The one doctest runner for the whole suite; every tests/*.cpp file adds its cases to it.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
