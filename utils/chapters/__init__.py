"""One module per chapter (see :mod:`utils.contents`): the models the chapter studies, its measurement drivers
and its explorer. A chapter notebook imports its own: ``from utils.chapters import ch04_post_training_quantization
as here``."""
