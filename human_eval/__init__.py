"""Human evaluation of synthetic echocardiograms: import/validation (:mod:`.schema`), statistics
(:mod:`.stats`), report (:mod:`.report`) and metric-vs-human agreement (:mod:`.agreement`).

Nothing is imported at package import time; import the submodule you need.
"""
