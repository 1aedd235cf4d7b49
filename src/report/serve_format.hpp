// Output of `serve`, `serve --search` and inference validation: tables and stable JSON
// (6 significant digits; units in key names). Fields are documented in docs/OUTPUT.md.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "serve/search.hpp"
#include "serve/serve.hpp"
#include "validate/validate.hpp"

namespace xpu {

nlohmann::ordered_json serve_json(const Model& m, const System& s, const ServeReport& r, bool with_explain);
std::string serve_text(const Model& m, const System& s, const ServeReport& r, bool with_explain);

nlohmann::ordered_json serve_search_json(const Model& m, const System& s, const ServeSearchResult& r, ServeObjective o);
std::string serve_search_text(const Model& m, const System& s, const ServeSearchResult& r, ServeObjective o);

nlohmann::ordered_json inference_validation_json(const ValidationResult& v);
std::string inference_validation_text(const ValidationResult& v);

}  // namespace xpu
