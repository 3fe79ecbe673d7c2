// Versions recorded in recipes and results, so every artefact says what produced it.
#pragma once

namespace switchyard {

// Defined in version.cpp, the one file compiled with them: a new version or engine rebuilds that
// file alone, not every file that includes this header.
extern const char * const kVersion;  // set by CMake from project()
extern const char * const kEngineVersion;  // llama.cpp release and commit

}  // namespace switchyard
