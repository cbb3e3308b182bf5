"""Search: which items of each class's library its vector averages (the loop's crossover, ProAPO)."""
