// The model outputs each golden fixture case holds, for the model tests that
// compare with them; apart from fixture_data.h, which the tests below the
// model use.
#pragma once

#include "engine/model/engine.h"

namespace rwkv::test {

// Every embedding head and the final state: what each fixture case holds.
inline const model::Outputs kHeadsAndState{
    model::Output::kRetrievalEmbedding, model::Output::kStsEmbedding,
    model::Output::kClassificationEmbedding, model::Output::kFinalState};

}  // namespace rwkv::test
