#include "support/version.h"

namespace switchyard {

const char * const kVersion = SWITCHYARD_VERSION;
const char * const kEngineVersion = SWITCHYARD_ENGINE_VERSION;

}  // namespace switchyard
