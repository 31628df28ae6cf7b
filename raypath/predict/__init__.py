"""`raypath predict`: a trained model applied to new slides, features reused or extracted as it expects."""
