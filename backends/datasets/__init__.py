"""Video datasets as users have them on disk, read without TensorFlow.

`read_dataset(root, layout=None, split=None)` detects the layout (or takes the one given)
and returns a `Dataset`: class names in label order, the train and test videos of the
split, the clips the annotations list that are missing on disk, and notes. Layouts:

* ``ucf101``: ``classInd.txt``, ``trainlist0N.txt``, ``testlist0N.txt`` (`ucf101`);
* ``hmdb51``: ``<class>_test_splitN.txt`` files, 0 unused, 1 train, 2 test (`hmdb51`);
* ``kinetics``: CSV annotations ``label,youtube_id,time_start,time_end,split`` (`kinetics`);
* ``folder``: ``DATA/<class>/<video>``, no official split (`folder`).

A malformed split file is a `SplitFileError` naming the file, line and column.
"""

from .base import (LAYOUTS, VIDEO_EXTENSIONS, Dataset, DatasetLayoutError, Sample,
                   SplitFileError)
from .detect import detect_layout, read_dataset

__all__ = ["Dataset", "DatasetLayoutError", "SplitFileError", "Sample", "LAYOUTS",
           "VIDEO_EXTENSIONS", "read_dataset", "detect_layout"]
