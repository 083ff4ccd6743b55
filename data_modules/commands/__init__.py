"""``poseshift`` commands beside Lightning's fit/validate/test/predict, which need the dataset readers.

* ``poseshift data check|convert`` (:mod:`.data`): inspect and convert dataset files;
* ``poseshift evolve --config ...`` (:mod:`.evolve`): grow an EvoSkeleton dataset.

They are registered under the ``poseshift.commands`` entry-point group (``setup.cfg``), which
:mod:`poseshift.cli` dispatches to, so the library itself never imports ``data_modules``.
"""
