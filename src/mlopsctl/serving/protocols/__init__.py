"""Wire formats people already speak: the native JSON body and MLflow's scoring protocol."""
