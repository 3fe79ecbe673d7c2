// Versions recorded in recipes and results, so every artefact says what produced it.
#pragma once

namespace switchyard {

inline constexpr const char * kVersion = SWITCHYARD_VERSION;               // set by CMake from project()
inline constexpr const char * kEngineVersion = SWITCHYARD_ENGINE_VERSION;  // llama.cpp release and commit

}  // namespace switchyard
