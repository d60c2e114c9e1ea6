mod sim;
mod store;
