"""The ML capability functions (build_image, train, evaluate, deploy, alert, predict) land here."""
