"""The local web page (gan-stylizer serve): the model menu and the page around it."""
