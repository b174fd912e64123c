// ewe::compiled, part 2: the float code of the layers, models, loss, optimizers,
// training objectives, callbacks and Trainer, compiled once here. Each of their headers
// ends with the matching `extern template` declarations under EWE_COMPILED_LIBRARY, so
// files that link ewe::compiled do not instantiate them again. (double, used by the
// gradient checks, stays header-only.)
#include "ewe/ewe.hpp"

template class ewe::ParameterStore<float>;
template class ewe::Layer<float>;
template class ewe::Dense<float>;
template class ewe::Conv2D<float>;
template class ewe::Conv2DTranspose<float>;
template class ewe::BatchNormalization<float>;
template class ewe::Dropout<float>;
template class ewe::ActivationLayer<float>;
template class ewe::Reshape<float>;
template class ewe::Flatten<float>;
template class ewe::Sequential<float>;
template class ewe::Reparameterization<float>;
template class ewe::Vae<float>;
template class ewe::SheepVae<float>;
template class ewe::VaeLoss<float>;
template class ewe::Optimizer<float>;
template class ewe::Sgd<float>;
template class ewe::Rmsprop<float>;
template class ewe::Adam<float>;
template class ewe::TrainingObjective<float>;
template class ewe::VaeObjective<float>;
template class ewe::AutoencoderObjective<float>;
template class ewe::Callback<float>;
template class ewe::KlAnnealing<float>;
template class ewe::ModelCheckpoint<float>;
template class ewe::CsvLogger<float>;
template class ewe::TensorBoardLogger<float>;
template class ewe::ProgressBar<float>;
template class ewe::PosteriorMonitor<float>;
template class ewe::LatentSnapshots<float>;
template class ewe::Trainer<float>;
