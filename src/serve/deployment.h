// One loaded portfolio with its backends: what a request runs on from start to end.
#pragma once

#include "model/portfolio.h"
#include "serve/backend.h"
#include "serve/router.h"
#include "support/error.h"

#include <cstdint>
#include <map>
#include <memory>
#include <string>

namespace switchyard::serve {

// Requests hold a shared_ptr to the deployment they started on, so a swap never pulls a backend
// out from under a running request.
struct Deployment {
    model::Portfolio portfolio;
    std::map<std::string, std::shared_ptr<Backend>> backends;
    std::unique_ptr<Router> router;  // refers to `portfolio`
    std::uint64_t generation = 0;

    // The backend of a model the portfolio names: loading the portfolio made one for each, so a
    // miss is switchyard's bug (an InvariantError, a 500), never the request's.
    const std::shared_ptr<Backend> & backend(const std::string & model) const {
        const auto it = backends.find(model);
        SWITCHYARD_INVARIANT(it != backends.end(), "every model of the portfolio has a backend: " + model);
        return it->second;
    }
};

}  // namespace switchyard::serve
