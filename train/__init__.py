"""adserve's offline model pipeline: synthetic world -> features -> multi-tower ESMM model -> calibration -> TorchScript export."""
