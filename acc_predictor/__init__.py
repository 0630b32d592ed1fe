"""msunas acc_predictor package."""
